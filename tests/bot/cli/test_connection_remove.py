"""`clinicbot connection remove ID`: the connection, its calendars and links go; an unknown id is one clear line."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from tests.bot.cli.test_sync_commands import cli, run  # noqa: F401  (the fixture)
from tests.fakes.memory_calendar import MemoryServer
from tests.sync import memory_adapter


def test_connection_remove_table_and_json(cli: click.Group) -> None:  # noqa: F811
    memory_adapter.SERVERS.clear()
    for name in ("a", "b"):
        memory_adapter.SERVERS[f"memory://x/{name}"] = MemoryServer()
    run(cli, "practice", "create", "Clinic", "--tz", "UTC")
    first = json.loads(run(cli, "connection", "add", "caldav", "--url", "memory://x/a", "--json"))["connection"]
    second = json.loads(run(cli, "connection", "add", "caldav", "--url", "memory://x/b", "--json"))["connection"]
    gone = json.loads(run(cli, "connection", "remove", str(first), "--json"))
    assert gone["id"] == first and gone["calendars"] == 1 and gone["push_channels_stopped"] == 0
    assert [c["id"] for c in json.loads(run(cli, "connection", "list", "--json"))] == [second]
    assert [c["connection"] for c in json.loads(run(cli, "calendar", "list", "--json"))] == [second]
    assert "Connection removed" in run(cli, "connection", "remove", str(second))
    result = CliRunner().invoke(cli, ["connection", "remove", str(first)])
    assert result.exit_code == 1 and f"there is no connection {first}" in result.output
