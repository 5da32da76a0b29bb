"""`doctor` checks that the app may write a team's Teams Shifts schedule, against the fake Graph (which
enforces the Schedule.ReadWrite.All application permission and the MS-APP-ACTS-AS owner), and says what to grant."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from adapters.graph import INTEGRATION
from bot.cli import main
from bot.cli.doctor import _second_writer_checks
from bot.commands.shift_cards import second_writer_lines
from sync.integrations import registry
from sync.runtime.core import Core
from sync.services import shifts as service
from sync.store.model import Connection
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.adapters.graph.fakes.graph_teams import FakeTeam
from tests.adapters.shifts.conftest import CLIENT_ID, CLIENT_SECRET, TENANT
from tests.adapters.shifts.test_publish import _PublishThroughFake, day, run_import, schedule
from tests.conftest import TEST_KEY


@pytest.fixture
def team(fake: GraphFake, people: dict[str, Mailbox]) -> FakeTeam:
    return fake.teams.add_team(TENANT, [m.user for m in people.values()])


def grant_schedule_role(fake: GraphFake) -> None:
    fake.login.grant_admin_consent(TENANT, roles=("Schedule.ReadWrite.All",))
    fake.login.expire_access_tokens()  # a token issued before the grant does not carry the new role


async def test_each_missing_piece_is_named_with_what_to_do(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], team: FakeTeam
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await run_import(core, schedule(f"Ann,LB1,ann@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes"))
    assert await service.check_teams_access(core, None) is None  # Outlook only: nothing to check
    await service.set_shift_target(core, None, "teams", actor="cli:admin", team_id=team.id,
                                   acts_as="dee@clinic.example")
    # Consent covers Calendars.ReadWrite only: Graph refuses the schedule for the missing role.
    check = await service.check_teams_access(core, None)
    assert check is not None and check.ok is False
    assert "may not use" in check.words and "Schedule.ReadWrite.All" in check.words
    assert "Application permissions > Schedule.ReadWrite.All" in check.fix
    assert CLIENT_ID in check.fix and f"Grant admin consent for tenant {TENANT}" in check.fix
    assert team.schedule is None and team.shifts == {}  # the check wrote nothing

    grant_schedule_role(fake)
    # Acting as someone Microsoft 365 does not know, then as someone outside the team.
    await service.set_shift_target(core, None, "teams", actor="cli:admin", acts_as="nobody@clinic.example")
    check = await service.check_teams_access(core, None)
    assert check is not None and check.ok is False and "does not know" in check.words
    assert f"shifts target teams team {team.id} as" in check.fix
    outsider = fake.add_user("eve@clinic.example", tenant_id=TENANT)
    await service.set_shift_target(core, None, "teams", actor="cli:admin", acts_as=outsider.user.upn)
    check = await service.check_teams_access(core, None)
    assert check is not None and check.ok is False and "MS-APP-ACTS-AS" in check.words
    assert "make eve@clinic.example an owner of the team" in check.fix

    # A team owner: the schedule does not exist yet (a note: the publish creates it), then it reads.
    await service.set_shift_target(core, None, "teams", actor="cli:admin", acts_as="dee@clinic.example")
    check = await service.check_teams_access(core, None)
    assert check is not None and check.ok is None and "no Shifts schedule yet" in check.words
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.teams_created, result.teams_failed) == (1, 0)
    check = await service.check_teams_access(core, None)
    assert check is not None and check.ok is True and "reads acting as dee@clinic.example" in check.words


async def test_a_publish_refused_by_teams_is_reported_until_the_next_one_succeeds(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], team: FakeTeam
) -> None:
    # The read passes but the last publish was refused (as with only Schedule.Read.All granted).
    grant_schedule_role(fake)
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await service.set_shift_target(core, None, "teams", actor="cli:admin", team_id=team.id,
                                   acts_as="dee@clinic.example")
    await run_import(core, schedule(f"Ann,LB1,ann@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes"))
    await service.publish(core, None, actor="cli:admin")
    async with core.store.session() as s:
        source = await s.scalar(select(Connection).where(Connection.provider == service.INTEGRATION))
        assert source is not None
        last = dict(source.config["last_publish"])
        last["errors"] = ["Teams Shifts x: graph: HTTP 403 Forbidden on POST /teams/t/schedule/shifts in $batch"]
        source.config = {**source.config, "last_publish": last}
    check = await service.check_teams_access(core, None)
    assert check is not None and check.ok is False and "last publish was refused" in check.words
    assert "Schedule.Read.All is not enough" in check.fix and "clinicbot shifts publish" in check.fix
    await service.publish(core, None, actor="cli:admin")  # nothing failed this time: the answer is clean
    check = await service.check_teams_access(core, None)
    assert check is not None and check.ok is True


async def test_doctor_fails_and_says_what_to_grant(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], team: FakeTeam, monkeypatch: pytest.MonkeyPatch
) -> None:
    if core.settings.database_schema:
        pytest.skip("the CLI reads its database from the environment; the PostgreSQL run uses a schema")
    monkeypatch.setitem(registry.OVERRIDES, "graph", replace(INTEGRATION, publishing=_PublishThroughFake(fake)))
    await service.set_shift_target(core, None, "teams", actor="cli:admin", team_id=team.id,
                                   acts_as="dee@clinic.example")
    env = {"CLINICBOT_DATABASE_URL": core.settings.database_url, "CLINICBOT_SECRET_KEY": TEST_KEY,
           "CLINICBOT_GRAPH_CLIENT_ID": CLIENT_ID, "CLINICBOT_GRAPH_CLIENT_SECRET": CLIENT_SECRET,
           "CLINICBOT_GRAPH_URL": fake.url}
    runner = CliRunner()
    refused = await asyncio.to_thread(runner.invoke, main, ["doctor"], env=env, catch_exceptions=False)
    assert refused.exit_code == 1
    line = next(ln for ln in refused.output.splitlines() if "Teams Shifts" in ln)
    assert line.startswith("✗ practice ") and "Microsoft Graph > Application permissions > Schedule.ReadWrite.All" in line
    grant_schedule_role(fake)
    granted = await asyncio.to_thread(runner.invoke, main, ["doctor"], env=env, catch_exceptions=False)
    line = next(ln for ln in granted.output.splitlines() if "Teams Shifts" in ln)
    assert line.startswith("- practice ") and "no Shifts schedule yet" in line


async def test_a_second_writer_in_teams_shifts_is_warned_of_where_clinicbot_publishes(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], team: FakeTeam, capsys: pytest.CaptureFixture[str]
) -> None:
    grant_schedule_role(fake)
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await service.set_shift_target(core, None, "teams", actor="cli:admin", team_id=team.id,
                                   acts_as="dee@clinic.example")
    await run_import(core, schedule(f"Ann,LB1,ann@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
                                    f"Bob,LB2,bob@clinic.example,Day clinic,{day(2)} 09:00,{day(2)} 17:00,,Yes"))
    assert (await service.publish(core, None, actor="cli:admin")).teams_created == 2
    clean = await service.check_second_writers(core, None)
    assert (clean.found, clean.checked, clean.of, clean.complete) == ((), 1, 1, True)
    # A manager also keeps Bob's shift in the Shifts app by hand (another name, the same times), and one of
    # Ann's at other times; the scheduler's Outlook integration puts Ann's shift in her Outlook calendar.
    mine = fake.teams.teams[team.id]
    ours = {s["userId"]: s for s in mine.shifts.values()}
    bob, ann = ours[people["bob"].user.oid], ours[people["ann"].user.oid]
    mine.shifts["SHFT_manager-1"] = {**bob, "id": "SHFT_manager-1",
                                     "sharedShift": {**bob["sharedShift"], "displayName": "Clinic", "notes": ""}}
    mine.shifts["SHFT_manager-2"] = {**ann, "id": "SHFT_manager-2", "sharedShift": {
        **ann["sharedShift"], "notes": "", "startDateTime": ann["sharedShift"]["startDateTime"].replace("T1", "T0")}}
    fake.put_event(people["ann"], {"subject": "Day clinic", "start": {"dateTime": ann["sharedShift"]["startDateTime"][:19],
                                   "timeZone": "UTC"}, "end": {"dateTime": ann["sharedShift"]["endDateTime"][:19],
                                                               "timeZone": "UTC"}})
    found = await service.check_second_writers(core, None)
    assert [(f.mailbox, f.person, f.lookalikes, f.where) for f in found.found] == [
        ("bob@clinic.example", "Bob", 1, "teams")]  # Teams only: Ann's Outlook copy doubles nothing of clinicbot's
    stored = await service.stored_second_writers(core, None)
    assert stored is not None and stored.found == found.found
    lines = second_writer_lines(stored, "America/New_York")
    assert "Bob (bob@clinic.example): 1 shift in the team's Teams Shifts schedule" in lines[0]
    assert "remove the shifts another writer puts in Teams Shifts" in lines[-1] and "Outlook" not in lines[-1]
    await _second_writer_checks(core)
    out = capsys.readouterr().out
    assert "✗" in out and "Teams Shifts schedule already holds shifts clinicbot did not write" in out
    # Both targets: the Outlook calendars are looked at too.
    await service.set_shift_target(core, None, "both", actor="cli:admin")
    await service.publish(core, None, actor="cli:admin")
    both = await service.check_second_writers(core, None)
    assert sorted((f.mailbox, f.where) for f in both.found) == [("ann@clinic.example", "outlook"),
                                                                ("bob@clinic.example", "teams")]
    assert (both.checked, both.of) == (3, 3)
