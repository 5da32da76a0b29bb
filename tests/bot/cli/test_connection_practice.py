"""`connection add` with several practices: it names them and refuses to guess; `--practice` chooses."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from tests.bot.cli.test_sync_commands import cli, run  # noqa: F401  (the fixture)
from tests.fakes.memory_calendar import MemoryServer
from tests.sync import memory_adapter


def test_connection_add_needs_the_practice_when_there_are_several(cli: click.Group) -> None:  # noqa: F811
    memory_adapter.SERVERS.clear()
    memory_adapter.SERVERS["memory://x/feed"] = MemoryServer()
    run(cli, "practice", "create", "Lee Clinic", "--tz", "UTC")
    run(cli, "practice", "create", "Northside Physio", "--tz", "Europe/London")
    refused = CliRunner().invoke(cli, ["connection", "add", "caldav", "--url", "memory://x/feed"])
    assert refused.exit_code == 1
    assert "several practices ('Lee Clinic', 'Northside Physio')" in refused.output and "--practice" in refused.output
    assert json.loads(run(cli, "connection", "list", "--json")) == []  # nothing stored
    added = json.loads(run(cli, "connection", "add", "caldav", "--url", "memory://x/feed",
                           "--practice", "Northside Physio", "--json"))
    unknown = CliRunner().invoke(cli, ["connection", "add", "caldav", "--url", "memory://x/feed",
                                       "--practice", "Nowhere"])
    assert unknown.exit_code == 1 and "no practice named 'Nowhere'" in unknown.output
    practices = {p["name"]: p["id"] for p in json.loads(run(cli, "practice", "list", "--json"))}
    rows = json.loads(run(cli, "connection", "list", "--json"))
    assert [(r["id"], r["practice"]) for r in rows] == [(added["connection"], practices["Northside Physio"])]
