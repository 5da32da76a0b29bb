"""Outlook events left behind by a publish that lost track of them, found and put right on the next publish.

An export without a Shift ID column keys each shift by its content (person, assignment, day). When a
create's answer is lost (or the process dies before recording it) and the row is then re-derived, the
event in the calendar belongs to no shift any more. The next publish looks in that calendar for
clinicbot's own marked events: it adopts one a shift records and deletes one no shift records, and
never touches an event clinicbot did not make. In every case the fake's calendars end up holding
exactly the published shifts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from adapters.graph.publishing import SHIFT_ID_PROPERTY, SHIFT_SOURCE_PROPERTY
from sync.runtime.core import Core
from sync.services import shifts as service
from sync.store.model import ShiftRow
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.adapters.shifts.conftest import ZONE
from tests.adapters.shifts.test_publish import day, events, run_import, schedule, writes

ANN = "Ann Lee,LB1,ann@clinic.example"
BOB = "Bob Ng,LB2,bob@clinic.example"


def row(who: str, assignment: str, offset: int, start: str = "08:00", end: str = "16:00") -> str:
    return f"{who},{assignment},{day(offset)} {start},{day(offset)} {end},,Yes"


def held(mbx: Mailbox) -> list[tuple[str, str]]:
    """What a calendar holds: (subject, local start) of each event, in order."""
    zone = ZoneInfo(ZONE)
    return [(e.fields["subject"], e.start.astimezone(zone).strftime("%Y-%m-%d %H:%M")) for e in events(mbx)]


async def recorded(core: Core) -> dict[str, str | None]:
    """Each shift row's key -> the event id it records (None: nothing recorded)."""
    async with core.store.session() as s:
        return {r.shift_key: r.pub_remote_id for r in (await s.scalars(select(ShiftRow))).all()}


async def assert_exactly_published(core: Core, people: dict[str, Mailbox]) -> None:
    """Every clinicbot event is recorded by a shift row, and every recorded one exists; nothing pending."""
    ids = {e.id for m in people.values() for e in events(m)
           if any(p["id"] == SHIFT_SOURCE_PROPERTY and p["value"].startswith("clinicbot-shifts-")
                  for p in e.fields.get("singleValueExtendedProperties") or [])}
    assert ids == {v for v in (await recorded(core)).values() if v is not None}
    async with core.store.session() as s:
        practice_id = await s.scalar(select(ShiftRow.practice_id).limit(1))
        assert all(r.sent_mailbox is None for r in (await s.scalars(select(ShiftRow))).all())
    assert practice_id is not None and await service.pending_count(core, practice_id) == 0


def by_hand(fake: GraphFake, mbx: Mailbox, subject: str, offset: int, extra: dict[str, Any] | None = None) -> str:
    """An event clinicbot did not make: the same subject and times as a shift (a second writer's copy)."""
    start = datetime.fromisoformat(f"{day(offset)}T08:00").replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
    return fake.put_event(mbx, {
        "subject": subject, "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        **(extra or {}),
    }).id


async def test_a_lost_create_answer_is_adopted_on_the_rerun_not_written_twice(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await run_import(core, schedule(row(ANN, "Day clinic", 2), row(ANN, "Day clinic", 3), row(BOB, "Day clinic", 2)))
    fake.lose_answers["POST"] = 2  # two creates land in Graph, their answers never reach clinicbot
    first = await service.publish(core, None, actor="cli:admin")
    assert (first.created, first.failed) == (1, 2)
    assert len(events(people["ann"])) + len(events(people["bob"])) == 3  # all three exist, one recorded
    async with core.store.session() as s:
        shift_rows = (await s.scalars(select(ShiftRow))).all()
    # The two whose answers were lost keep the mark of where their create went; the recorded one does not.
    assert sorted((r.pub_remote_id is None, r.sent_mailbox is not None) for r in shift_rows) == [
        (False, False), (True, True), (True, True)]
    mark = len(fake.operations)
    again = await service.publish(core, None, actor="cli:admin")
    assert (again.created, again.updated, again.deleted, again.failed) == (0, 2, 0, 0)
    assert [m for m, _p, _s in writes(fake, mark)] == ["PATCH", "PATCH"]  # adopted, never created again
    assert held(people["ann"]) == [("Day clinic", f"{day(2)} 08:00"), ("Day clinic", f"{day(3)} 08:00")]
    assert held(people["bob"]) == [("Day clinic", f"{day(2)} 08:00")]
    await assert_exactly_published(core, people)


async def test_a_lost_create_whose_shift_was_then_re_derived_leaves_no_orphan(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await run_import(core, schedule(row(ANN, "Day clinic", 2)))
    assert (await service.publish(core, None, actor="cli:admin")).created == 1
    await run_import(core, schedule(row(ANN, "Day clinic", 2), row(ANN, "Day clinic", 3)))
    fake.lose_answers["POST"] = 1  # the day-3 create lands in Graph; its answer never reaches clinicbot
    first = await service.publish(core, None, actor="cli:admin")
    assert (first.created, first.failed) == (0, 1) and len(events(people["ann"])) == 2
    # A practitioner's own event, and one a second writer made with a shift's subject and times: never touched.
    own = by_hand(fake, people["ann"], "Dentist", 3)
    copy = by_hand(fake, people["ann"], "Day clinic", 2)
    # The scheduler renames the assignment of Ann's day-3 shift before the retry: without a shift id
    # column its key is derived from the assignment, so it is a new shift and the old key is gone.
    await run_import(core, schedule(row(ANN, "Day clinic", 2), row(ANN, "Late clinic", 3, "10:00", "18:00")))
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.created, result.updated, result.deleted, result.failed) == (1, 0, 1, 0)
    assert held(people["ann"]) == [("Day clinic", f"{day(2)} 08:00"), ("Day clinic", f"{day(2)} 08:00"),
                                   ("Dentist", f"{day(3)} 08:00"), ("Late clinic", f"{day(3)} 10:00")]
    ids = {e.id for e in events(people["ann"])}
    assert {own, copy} <= ids
    await assert_exactly_published(core, people)
    # Once put right, a publish writes nothing and looks nowhere.
    mark = len(fake.operations)
    assert (await service.publish(core, None, actor="cli:admin")).writes == 0
    assert fake.operations[mark:] == []


async def test_a_derived_id_change_deletes_the_old_event_and_writes_the_new(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await run_import(core, schedule(row(ANN, "Day clinic", 2), row(BOB, "Day clinic", 3)))
    assert (await service.publish(core, None, actor="cli:admin")).created == 2
    # Bob's shift goes to Ann, and Ann's day-2 one becomes "Late clinic": both keys change.
    await run_import(core, schedule(row(ANN, "Late clinic", 2), row(ANN, "Day clinic", 3)))
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.created, result.deleted, result.failed) == (2, 2, 0)
    assert held(people["ann"]) == [("Late clinic", f"{day(2)} 08:00"), ("Day clinic", f"{day(3)} 08:00")]
    assert held(people["bob"]) == []
    await assert_exactly_published(core, people)


async def test_a_crash_mid_publish_then_a_changed_schedule_ends_with_exactly_the_published_shifts(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    rows = [row(who, "Day clinic", d) for who in (ANN, BOB) for d in range(2, 6)]
    await run_import(core, schedule(*rows))
    real = service._Recorder._flush

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the process died after Graph answered")

    monkeypatch.setattr(service._Recorder, "_flush", crash)
    with pytest.raises(RuntimeError):
        await service.publish(core, None, actor="cli:admin")
    assert len(events(people["ann"])) == 4 and len(events(people["bob"])) == 4  # written, none recorded
    monkeypatch.setattr(service._Recorder, "_flush", real)
    # Before the re-run, the schedule changes: Bob's day-3 shift is dropped, Ann's day-4 one becomes
    # "Late clinic" (a new key), and everything else stays.
    changed = [r for r in rows if not (r.startswith(BOB) and day(3) in r)]
    changed = [row(ANN, "Late clinic", 4) if r == row(ANN, "Day clinic", 4) else r for r in changed]
    await run_import(core, schedule(*changed))
    # Someone else's marked event in Bob's calendar (another tool's, same property, another value): not ours.
    foreign = by_hand(fake, people["bob"], "Day clinic", 3, {"singleValueExtendedProperties": [
        {"id": SHIFT_SOURCE_PROPERTY, "value": "some-other-tool"}, {"id": SHIFT_ID_PROPERTY, "value": "x"}]})
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.created, result.updated, result.deleted, result.failed) == (1, 6, 2, 0)
    assert held(people["ann"]) == [("Day clinic", f"{day(2)} 08:00"), ("Day clinic", f"{day(3)} 08:00"),
                                   ("Late clinic", f"{day(4)} 08:00"), ("Day clinic", f"{day(5)} 08:00")]
    assert held(people["bob"]) == [("Day clinic", f"{day(2)} 08:00"), ("Day clinic", f"{day(3)} 08:00"),
                                   ("Day clinic", f"{day(4)} 08:00"), ("Day clinic", f"{day(5)} 08:00")]
    assert foreign in {e.id for e in events(people["bob"])}
    await assert_exactly_published(core, people)
    foreign_ids = {foreign}
    ours = {e.id for m in people.values() for e in events(m)} - foreign_ids
    assert len(ours) == 7
