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


OID = "6f1c9a52-1d4e-4a7b-9a0f-2f3b4c5d6e7f"


def test_staff_map_graph_goes_through_the_graph_checks(cli: click.Group) -> None:  # noqa: F811
    """`staff map graph ...` is the Graph identity mapping: checked and normalised by the integration's
    staff-identities slot, other kinds kept, and shown by `practitioner list` like `practitioner map`."""
    run(cli, "practice", "create", "Clinic", "--tz", "UTC")
    run(cli, "practitioner", "add", "Dr Lee", "--handle", "dr-lee")
    result = CliRunner().invoke(cli, ["staff", "map", "graph", "not-a-upn", "@dr-lee"])
    assert result.exit_code == 1 and "not a user principal name" in result.output
    result = CliRunner().invoke(cli, ["staff", "map", "graph", "x", "@dr-lee", "--kind", "team_member"])
    assert result.exit_code == 1 and "upn or object_id" in result.output
    mapped = json.loads(run(cli, "staff", "map", "Outlook", "Dr.Lee@Clinic.Example", "@dr-lee", "--json"))
    assert (mapped["integration"], mapped["kind"], mapped["external_id"]) == ("graph", "upn", "dr.lee@clinic.example")
    by_guid = json.loads(run(cli, "staff", "map", "graph", OID.upper(), "@dr-lee", "--json"))
    assert (by_guid["kind"], by_guid["external_id"]) == ("object_id", OID)
    assert json.loads(run(cli, "practitioner", "list", "--json"))[0]["upn"] == "dr.lee@clinic.example"
    removed = json.loads(run(cli, "staff", "unmap", "graph", "DR.LEE@clinic.example", "--json"))
    assert (removed["external_id"], removed["practitioner"]) == ("dr.lee@clinic.example", "dr-lee")
    listed = json.loads(run(cli, "staff", "list", "--integration", "graph", "--json"))
    assert [(m["kind"], m["external_id"]) for m in listed["mappings"]] == [("object_id", OID)]
    result = CliRunner().invoke(cli, ["staff", "unmap", "graph", "dr.lee@clinic.example"])
    assert result.exit_code == 1 and "no practitioner is mapped" in result.output
