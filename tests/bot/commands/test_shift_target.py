"""`shift-target` in chat and `clinicbot shifts target` on the CLI: one parser, shown to staff, set by admins,
audited, bad words refused with an example."""

from __future__ import annotations

import json

import click
import pytest

from bot.commands import handle, parse
from bot.commands.errors import ParseError
from bot.commands.shift_target import SetShiftTarget
from bot.views import Error, Notice
from sync.runtime.core import Core
from sync.services import shifts as service
from tests.bot.cli.kit import cli, run
from tests.bot.clinic import make_actor, seed

__all__ = ["cli"]  # the fixture, used by name

TEAM = "0f3c6a1e-2b4d-4c8e-9a7f-1d2e3f4a5b6c"


def test_the_words_parse_into_one_command() -> None:
    assert parse("shift-target") == SetShiftTarget()
    assert parse(f"shift-target teams team {TEAM} as Lee@Clinic.example") == SetShiftTarget(
        "teams", TEAM, "Lee@Clinic.example")
    assert parse("shifts-target BOTH") == SetShiftTarget("both")
    with pytest.raises(ParseError, match="outlook, teams or both"):
        parse("shift-target slack")
    with pytest.raises(ParseError, match="team <team id>"):
        parse("shift-target teams channel general")


async def test_staff_see_admins_set_and_it_is_audited(core: Core) -> None:
    await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    admin = await make_actor(core, "UA", ("admin",))
    shown = await handle(core, staff, parse("shift-target"))
    assert isinstance(shown, Notice) and "each person's Outlook calendar" in shown.text
    forbidden = await handle(core, staff, parse("shift-target both"))
    assert isinstance(forbidden, Error) and forbidden.kind == "forbidden" and "only admins" in forbidden.message
    refused = await handle(core, admin, parse("shift-target teams"))
    assert isinstance(refused, Error) and "which team" in refused.message
    done = await handle(core, admin, parse(f"shift-target both team {TEAM} as lee@clinic.example"))
    assert isinstance(done, Notice) and "Teams Shifts schedule" in done.text and TEAM in done.text
    found = await service.shift_target(core, None)
    assert found.as_dict() == {"target": "both", "team_id": TEAM, "acts_as": "lee@clinic.example"}
    done = await handle(core, admin, parse("shift-target outlook"))
    assert isinstance(done, Notice) and "removed at the next publish" in done.text


def test_the_cli_reads_the_same_words(cli: click.Group) -> None:
    run(cli, "practice", "create", "North Clinic", "--tz", "UTC")
    shown = json.loads(run(cli, "shifts", "target", "--json"))
    assert shown["target"] == "outlook"
    out = json.loads(run(cli, "shifts", "target", "teams", "team", TEAM, "as", "lee@clinic.example", "--json"))
    assert (out["target"], out["team_id"], out["before"]) == ("teams", TEAM, "outlook")
    assert "outlook, teams or both" in run(cli, "shifts", "target", "slack", code=1)
    assert "not a team id" in run(cli, "shifts", "target", "teams", "team", "general", code=1)
    entries = [json.loads(line) for line in run(cli, "audit", "export", "--format", "jsonl").splitlines() if line]
    changes = [e for e in entries if e["action"] == "shifts.target"]
    assert [(c["before"]["target"], c["after"]["target"]) for c in changes] == [("outlook", "teams")]
    assert changes[0]["actor"].startswith("cli:")
