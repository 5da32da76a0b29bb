"""Publishing a schedule to a team's Microsoft Teams Shifts schedule through the fake Graph (application
permissions, MS-APP-ACTS-AS), alone and beside Outlook: creates, replaces, deletes, crash safety by marker."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.commands.shift_cards import publish_card
from sync.runtime.core import Core
from sync.services import shifts as service
from sync.services.errors import Invalid
from sync.store.model import AuditEntry, ShiftRow
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.adapters.graph.fakes.graph_teams import FakeTeam
from tests.adapters.shifts.conftest import TENANT
from tests.adapters.shifts.test_publish import day, events, run_import, schedule


@pytest.fixture
def team(fake: GraphFake, people: dict[str, Mailbox]) -> FakeTeam:
    fake.login.grant_admin_consent(TENANT, roles=("Schedule.ReadWrite.All",))
    return fake.teams.add_team(TENANT, [m.user for m in people.values()])


def shared(team: FakeTeam) -> list[dict[str, Any]]:
    return sorted((s["sharedShift"] | {"userId": s["userId"], "id": s["id"]} for s in team.shifts.values()),
                  key=lambda s: (s["startDateTime"], s["userId"]))


def rows(*people_days: tuple[str, str, int, str]) -> bytes:
    return schedule(*(f"{name.title()},LB-{name},{name}@clinic.example,Day clinic,{day(d)} {start},{day(d)} 16:00,"
                      "bring the pager,Yes" for name, start, d, _ in people_days))


async def test_teams_only_writes_shared_shifts_and_a_republish_touches_only_what_changed(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], team: FakeTeam
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    before, after = await service.set_shift_target(core, None, "teams", actor="cli:admin", team_id=team.id,
                                                   acts_as="dee@clinic.example")
    assert (before.target, after.target) == ("outlook", "teams")
    await run_import(core, rows(("ann", "08:00", 2, ""), ("bob", "09:00", 2, ""), ("ann", "08:00", 3, "")))
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.teams_created, result.teams_failed, result.created) == (3, 0, 0)
    assert team.schedule is not None and team.schedule["enabled"] and team.schedule["timeZone"] == "America/New_York"
    assert [g["displayName"] for g in team.groups.values()] == ["Clinic shifts (clinicbot)"]
    got = shared(team)
    assert [s["userId"] for s in got] == [people["ann"].user.oid, people["bob"].user.oid, people["ann"].user.oid]
    assert all(s["displayName"] == "Day clinic" and s["theme"] == "blue" for s in got)
    assert all(s["notes"].splitlines()[-1].startswith("[clinicbot-shift:") for s in got)
    assert all(x["draftShift"] is None for x in team.shifts.values())
    assert events(people["ann"]) == []  # Teams only: nothing in Outlook
    # A hand-made shift in the same team is never touched.
    mine = fake.teams.teams[team.id]
    mine.shifts["SHFT_by-hand"] = {"id": "SHFT_by-hand", "userId": people["bob"].user.oid,
                                   "schedulingGroupId": next(iter(mine.groups)), "draftShift": None,
                                   "sharedShift": dict(got[0], notes="covering", displayName="Swap")}
    # Bob's shift moves, Ann's second one goes, Dee gets one: one replace, one delete, one create.
    mark = len(fake.operations)
    await run_import(core, rows(("ann", "08:00", 2, ""), ("bob", "10:00", 2, ""), ("dee", "08:00", 4, "")))
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.teams_created, result.teams_updated, result.teams_deleted) == (1, 1, 1)
    written = [(m, p.rsplit("/", 1)[-1] if m != "POST" else "") for m, p, _s in fake.operations[mark:]
               if "/schedule/shifts" in p and m in ("POST", "PUT", "DELETE")]
    assert sorted(m for m, _ in written) == ["DELETE", "POST", "PUT"]
    assert "SHFT_by-hand" in mine.shifts
    assert len([s for s in shared(team) if s["id"] != "SHFT_by-hand"]) == 3
    # Nothing changed: nothing written.
    mark = len(fake.operations)
    result = await service.publish(core, None, actor="cli:admin")
    assert not [op for op in fake.operations[mark:] if op[0] in ("POST", "PUT", "DELETE")]


async def test_both_targets_and_leaving_teams_removes_its_shifts(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], team: FakeTeam
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await service.set_shift_target(core, None, "both", actor="chat:admin", team_id=team.id,
                                   acts_as=people["dee"].user.oid)
    imported = await run_import(core, rows(("ann", "08:00", 2, "")))
    await service.set_flags(core, None, "Day clinic", actor="cli:admin", free=True)
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.created, result.teams_created) == (1, 1)
    card = publish_card("march.csv", imported, result)
    assert "Outlook: 1 added, 0 changed, 0 removed." in card.lines
    assert "Teams Shifts: 1 added, 0 changed, 0 removed." in card.lines
    assert [e.fields["showAs"] for e in events(people["ann"])] == ["free"]
    assert [s["theme"] for s in shared(team)] == ["gray"]
    await service.set_shift_target(core, None, "outlook", actor="chat:admin")
    assert await service.pending_count(core, (await service.practice_ref(core, None))[0]) == 1
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.teams_deleted, result.created, result.updated) == (1, 0, 0)
    assert team.shifts == {} and len(events(people["ann"])) == 1
    async with core.store.session() as s:
        audits = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "shifts.target")
                                  .order_by(AuditEntry.id))).all()
    assert [(a.actor, (a.after or {}).get("target")) for a in audits] == [("chat:admin", "both"),
                                                                          ("chat:admin", "outlook")]


async def test_a_create_whose_answer_was_lost_is_found_by_its_marker(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], team: FakeTeam, monkeypatch: pytest.MonkeyPatch
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await service.set_shift_target(core, None, "teams", actor="cli:admin", team_id=team.id,
                                   acts_as="dee@clinic.example")
    await run_import(core, rows(("ann", "08:00", 2, ""), ("bob", "09:00", 3, "")))
    real = service._bulk_update

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the process died after Graph answered")

    monkeypatch.setattr(service, "_bulk_update", crash)
    with pytest.raises(RuntimeError):
        await service.publish(core, None, actor="cli:admin")
    assert len(team.shifts) == 2  # written, not recorded
    monkeypatch.setattr(service, "_bulk_update", real)
    # Meanwhile Bob's shift moved two days. Without a shift id column its key is its day, so it is a new
    # shift: Ann's is found by its marker and replaced, Bob's new one created, his old one (marked,
    # recorded nowhere) deleted.
    await run_import(core, rows(("ann", "08:00", 2, ""), ("bob", "09:00", 5, "")))
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.teams_created, result.teams_updated, result.teams_deleted, result.teams_failed) == (1, 1, 1, 0)
    assert len(team.shifts) == 2
    assert sorted(s["startDateTime"][:10] for s in shared(team)) == [day(2), day(5)]
    async with core.store.session() as s:
        assert all(r.teams_remote_id in team.shifts for r in (await s.scalars(select(ShiftRow))).all())


async def test_teams_errors_are_told_and_nothing_is_lost(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], team: FakeTeam
) -> None:
    with pytest.raises(Invalid, match="which team"):
        await service.set_shift_target(core, None, "teams", actor="cli:admin")
    with pytest.raises(Invalid, match="team id"):
        await service.set_shift_target(core, None, "teams", actor="cli:admin", team_id="general", acts_as="a@b.c")
    with pytest.raises(Invalid, match="outlook, teams or both"):
        await service.set_shift_target(core, None, "slack", actor="cli:admin")
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    # Acting as someone outside the team: Graph refuses; the shifts stay pending with the reason.
    outsider = fake.add_user("eve@clinic.example", tenant_id=TENANT)
    await service.set_shift_target(core, None, "teams", actor="cli:admin", team_id=team.id,
                                   acts_as=outsider.user.upn)
    await run_import(core, schedule(f"Ann,LB1,ann@clinic.example,Night,{day(2)} 08:00,{day(4)} 08:00,,Yes",
                                    f"Bob,LB2,bob@clinic.example,Day,{day(2)} 08:00,{day(2)} 16:00,,Yes"))
    result = await service.publish(core, None, actor="cli:admin")
    assert result.teams_failed == 2 and "403" in result.errors[-1] and team.shifts == {}
    # Acting as a member: the day shift lands; the 48-hour one is refused by Shifts (at most 24 hours).
    await service.set_shift_target(core, None, "teams", actor="cli:admin", acts_as="dee@clinic.example")
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.teams_created, result.teams_failed) == (1, 1)
    async with core.store.session() as s:
        night = await s.scalar(select(ShiftRow).where(ShiftRow.assignment == "Night"))
        assert night is not None and night.teams_remote_id is None and "400" in (night.last_error or "")
