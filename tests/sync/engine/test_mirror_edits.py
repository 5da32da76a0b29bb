"""Hand edits of mirror copies under the practice's `mirror_edits` (issue 22, item 2): card (staff
decide), follow (a practitioner's move in their own calendar reaches the source, audited as theirs),
keep (the copy is put back, no card); a booking platform's and a feed's bookings always get the card."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from sync.boot import open_core
from sync.engine.outbox import run_until_idle
from sync.engine.plan import (
    CalendarView,
    Canonical,
    Changes,
    FollowMirror,
    Incoming,
    LinkView,
    Policy,
    RaiseConflict,
    RestoreMirror,
    plan,
)
from sync.engine.projection import mirror_uid, project
from sync.engine.run import sync_connection
from sync.engine.subscriber import register
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.services.mirror_edits import set_mirror_edits
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, Calendar, ConflictNotice
from tests.sync.helpers import NOW, Clinic, booking, make_clinic

MIRROR = CalendarView(id=2, role="mirror", practitioner_id=7, practice_id=1)
SHARED = CalendarView(id=3, role="mirror", practitioner_id=None, practice_id=1)


def _appt(source: int | None = 1, **kw: object) -> Canonical:
    values: dict[str, object] = {"id": 10, "practitioner_id": 7, "start": NOW, "end": NOW + timedelta(minutes=30),
                                 "client_name": "Jane Roe", "service": "Physio", "source_calendar_id": source}
    values.update(kw)
    return Canonical(**values)  # type: ignore[arg-type]


def _edited(appt: Canonical, cal: CalendarView, policy: Policy, **changes: object) -> list[object]:
    """Plan one read of `cal` in which its copy of `appt` was edited by hand with `changes`."""
    copy = project(appt, cal, policy, mirror_uid(appt.id, cal.id))
    link = LinkView(1, appt.id, cal.id, "r1", "e1", copy.content_hash())
    edited = Incoming("r1", "e2", copy.with_changes(**changes))
    return list(plan(Changes([edited]), {"r1": [link]}, {appt.id: appt}, cal, policy, writable_sources={1}))


MOVED = {"start": NOW + timedelta(hours=2), "end": NOW + timedelta(hours=2, minutes=30)}


@pytest.mark.parametrize(("mode", "source", "cal", "changes", "expected"), [
    ("card", 1, MIRROR, MOVED, RaiseConflict),
    ("follow", 1, MIRROR, MOVED, FollowMirror),
    ("follow", None, MIRROR, MOVED, FollowMirror),  # booked in clinicbot
    ("follow", 1, MIRROR, {"summary": "renamed"}, RestoreMirror),  # not a move: put back
    ("follow", 1, SHARED, MOVED, RaiseConflict),  # a shared calendar: whose move is it?
    ("follow", 5, MIRROR, MOVED, RaiseConflict),  # a booking platform's or a feed's booking
    ("keep", 1, MIRROR, MOVED, RestoreMirror),
    ("keep", 1, SHARED, {"summary": "renamed"}, RestoreMirror),
    ("keep", 5, MIRROR, MOVED, RaiseConflict),
])
def test_the_plan_per_mode_and_source(
    mode: str, source: int | None, cal: CalendarView, changes: dict[str, object], expected: type
) -> None:
    (action,) = _edited(_appt(source), cal, Policy.from_settings({}, mode), **changes)
    assert isinstance(action, expected)
    if isinstance(action, FollowMirror):
        assert (action.start, action.end) == (MOVED["start"], MOVED["end"])


def test_a_series_or_one_visit_of_it_always_gets_the_card() -> None:
    for appt in (_appt(rrule="FREQ=WEEKLY"), _appt(recurrence_key="20260302T080000Z")):
        for mode in ("follow", "keep"):
            (action,) = _edited(appt, MIRROR, Policy.from_settings({}, mode), **MOVED)
            assert isinstance(action, RaiseConflict)


@pytest.fixture
async def core(settings: Settings) -> AsyncIterator[Core]:
    c = open_core(settings)
    await upgrade(c.store)
    register(c)
    try:
        yield c
    finally:
        await c.close()


async def _clinic(core: Core, mode: str) -> Clinic:
    """One booking on a writable source calendar, copied to Dr Lee's two mirrors."""
    clinic = await make_clinic(core, mirrors=2)
    await set_mirror_edits(core, clinic.practice_id, mode, actor="cli:admin")
    clinic.servers["source"].put(booking("b0", NOW + timedelta(days=1)))
    await sync_connection(core, clinic.connections["source"])
    await _settle(clinic)
    return clinic


async def _settle(clinic: Clinic) -> None:
    async def sleep(seconds: float) -> None:
        clinic.now += timedelta(seconds=seconds)

    await run_until_idle(clinic.core, sleep=sleep)


async def _move_copy(clinic: Clinic, mirror: str, hours: int) -> None:
    srv = clinic.servers[mirror]
    (rid, item), = srv.items.items()
    ev = item.event
    srv.put(ev.with_changes(start=ev.start + timedelta(hours=hours), end=ev.end + timedelta(hours=hours)), rid)


async def _notices(core: Core) -> int:
    async with core.store.session() as s:
        return len((await s.scalars(select(ConflictNotice.id))).all())


async def test_follow_moves_the_booking_at_its_source_and_on_the_other_mirror(core: Core) -> None:
    clinic = await _clinic(core, "follow")
    before = clinic.servers["source"].items["b0"].event.start
    await _move_copy(clinic, "mirror0", 2)
    report = await sync_connection(core, clinic.connections["mirror0"])
    assert (report.updated, report.conflicts) == (1, 0)
    await _settle(clinic)
    moved = before + timedelta(hours=2)
    assert clinic.servers["source"].items["b0"].event.start == moved
    assert [i.event.start for i in clinic.servers["mirror1"].items.values()] == [moved]
    assert [i.event.start for i in clinic.servers["mirror0"].items.values()] == [moved]
    async with core.store.session() as s:
        appt = await s.scalar(select(Appointment))
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "appointment.rescheduled"))
    assert appt is not None and appt.start == moved
    assert entry is not None and entry.actor == "practitioner:dr-lee" and entry.details["via"] == "mirror_edit"
    # The source's echo of our write, and the mirrors' reads, are not changes any more.
    for name in ("source", "mirror0", "mirror1"):
        again = await sync_connection(core, clinic.connections[name])
        assert (again.updated, again.conflicts, again.created) == (0, 0, 0), name
    assert await _notices(core) == 0


async def test_keep_puts_the_copy_back_without_a_card(core: Core) -> None:
    clinic = await _clinic(core, "keep")
    booked = clinic.servers["source"].items["b0"].event.start
    await _move_copy(clinic, "mirror0", 3)
    report = await sync_connection(core, clinic.connections["mirror0"])
    assert report.conflicts == 0
    await _settle(clinic)
    assert [i.event.start for i in clinic.servers["mirror0"].items.values()] == [booked]
    assert (await sync_connection(core, clinic.connections["mirror0"])).conflicts == 0
    assert await _notices(core) == 0
    async with core.store.session() as s:
        assert "sync.mirror_restored" in (await s.scalars(select(AuditEntry.action))).all()


async def test_keep_puts_the_same_edit_back_every_time_it_is_made(core: Core) -> None:
    """Found by the convergence machine: the same move made by hand again (same content as the first
    time) made the same outbox key, which the outbox skipped as a repeat, so the second edit stayed."""
    clinic = await _clinic(core, "keep")
    booked = clinic.servers["source"].items["b0"].event.start
    for _ in range(3):
        await _move_copy(clinic, "mirror0", 3)
        assert (await sync_connection(core, clinic.connections["mirror0"])).conflicts == 0
        await _settle(clinic)
        assert [i.event.start for i in clinic.servers["mirror0"].items.values()] == [booked]
    async with core.store.session() as s:
        actions = (await s.scalars(select(AuditEntry.action))).all()
    assert actions.count("sync.mirror_restored") == 3


async def test_card_stays_the_default(core: Core) -> None:
    clinic = await _clinic(core, "card")
    await _move_copy(clinic, "mirror0", 1)
    assert (await sync_connection(core, clinic.connections["mirror0"])).conflicts == 1
    assert await _notices(core) == 1


async def test_a_feed_booking_gets_the_card_even_in_follow_mode(core: Core) -> None:
    clinic = await _clinic(core, "follow")
    async with core.store.session() as s:  # the source is a feed clinicbot cannot write
        await s.execute(update(Calendar).where(Calendar.id == clinic.calendars["source"]).values(read_only=True))
    await _move_copy(clinic, "mirror1", 1)
    assert (await sync_connection(core, clinic.connections["mirror1"])).conflicts == 1
    assert await _notices(core) == 1


async def test_a_hand_edit_racing_our_write_is_decided_by_the_next_read(core: Core) -> None:
    """The copy is edited after the last read while an update is queued: in keep mode the write does
    not overwrite blindly nor freeze the copy in conflict; the next read puts it back."""
    clinic = await _clinic(core, "keep")
    await _move_copy(clinic, "mirror0", 1)  # not yet read
    clinic.servers["source"].put(booking("b0", NOW + timedelta(days=1, hours=4)))
    await sync_connection(core, clinic.connections["source"])
    await _settle(clinic)
    await sync_connection(core, clinic.connections["mirror0"])
    await _settle(clinic)
    want = NOW + timedelta(days=1, hours=4)
    assert [i.event.start for i in clinic.servers["mirror0"].items.values()] == [want]
    assert await _notices(core) == 0


async def test_the_same_hand_edit_after_a_kept_conflict_is_a_new_conflict_on_a_content_etag_server(
    core: Core,
) -> None:
    """CalDAV servers such as Radicale derive an etag from the content: the same hand edit made again,
    after staff kept the booking, comes back with the first edit's etag. It is a new conflict: staff
    get a new card, and keeping the booking again puts the copy back again."""
    from dataclasses import replace

    from sync.services.conflicts import resolve_conflict
    from sync.store.model import Link

    clinic = await _clinic(core, "card")
    srv = clinic.servers["mirror0"]
    booked = clinic.servers["source"].items["b0"].event.start
    first_etag: str | None = None
    for attempt in range(1, 4):
        await _move_copy(clinic, "mirror0", 1)
        (rid, item), = srv.items.items()
        if first_etag is None:
            first_etag = item.etag
        else:
            srv.items[rid] = replace(item, etag=first_etag)  # same content as the first edit: same etag
        assert (await sync_connection(core, clinic.connections["mirror0"])).conflicts == 1
        assert await _notices(core) == attempt
        async with core.store.session() as s:
            link_id = (await s.scalars(select(Link.id).where(Link.state == "conflict"))).one()
        await resolve_conflict(core, link_id, "keep_booking", "slack:T1/UA")
        await _settle(clinic)
        assert [i.event.start for i in srv.items.values()] == [booked], attempt


async def test_a_copy_moved_by_hand_as_its_booking_is_cancelled_shows_the_cancellation(core: Core) -> None:
    """Found by the convergence machine: under follow, the practitioner moved the copy while the booking
    was being cancelled at its source. The cancellation's write to the copy met the hand edit (412) and
    left it for the next read; that read saw a move of a cancelled visit, which cannot be followed, and
    did nothing, so the copy stayed moved and confirmed for good. It is put back, as cancelled."""
    clinic = await _clinic(core, "follow")
    src = clinic.servers["source"]
    booked = src.items["b0"].event.start
    await _move_copy(clinic, "mirror0", 1)
    src.put(src.items["b0"].event.with_changes(status="cancelled"), "b0")
    for _ in range(3):
        for name in ("source", "mirror0", "mirror1"):
            assert (await sync_connection(core, clinic.connections[name])).failed == 0
        await _settle(clinic)
    for mirror in ("mirror0", "mirror1"):
        (item,) = clinic.servers[mirror].items.values()
        assert (item.event.status, item.event.start) == ("cancelled", booked), mirror
    async with core.store.session() as s:
        appt = await s.scalar(select(Appointment))
    assert appt is not None and (appt.status, appt.start) == ("cancelled", booked)
