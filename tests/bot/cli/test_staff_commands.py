"""`clinicbot staff map|unmap|list`: an admin maps a platform's staff id to a practitioner on the command line."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from tests.bot.cli.test_sync_commands import cli, run  # noqa: F401  (the fixture)


def test_staff_map_list_unmap(cli: click.Group) -> None:  # noqa: F811
    run(cli, "practice", "create", "Clinic", "--tz", "UTC")
    run(cli, "practitioner", "add", "Dr Lee", "--handle", "dr-lee")
    mapped = json.loads(run(cli, "staff", "map", "square", "TM-1", "@dr-lee", "--json"))
    assert (mapped["integration"], mapped["kind"], mapped["external_id"], mapped["practitioner"]) == (
        "square", "team_member", "TM-1", "dr-lee")
    listed = json.loads(run(cli, "staff", "list", "--json"))
    assert [m["external_id"] for m in listed["mappings"]] == ["TM-1"] and listed["unassigned"] == []
    assert "TM-1" in run(cli, "staff", "list")
    assert json.loads(run(cli, "staff", "unmap", "square", "TM-1", "--json"))["external_id"] == "TM-1"
    assert json.loads(run(cli, "staff", "list", "--json"))["mappings"] == []


def test_staff_map_refuses_unknown_practitioner_and_kind(cli: click.Group) -> None:  # noqa: F811
    run(cli, "practice", "create", "Clinic", "--tz", "UTC")
    run(cli, "practitioner", "add", "Dr Lee", "--handle", "dr-lee")
    result = CliRunner().invoke(cli, ["staff", "map", "square", "TM-1", "@nobody"])
    assert result.exit_code == 1 and "no practitioner '@nobody'" in result.output
    result = CliRunner().invoke(cli, ["staff", "map", "zzz", "X", "@dr-lee"])
    assert result.exit_code == 1 and "kind" in result.output
    assert json.loads(run(cli, "staff", "list", "--json"))["mappings"] == []
