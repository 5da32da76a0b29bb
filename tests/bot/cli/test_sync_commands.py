"""The sync admin commands end to end: connect, set roles, run, status, list (tables and --json)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sync.contract.items import EventData
from sync.integrations import registry
from tests.conftest import TEST_KEY
from tests.fakes.memory_calendar import MemoryServer
from tests.sync import memory_adapter


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> click.Group:
    import bot.cli as cli_pkg
    from bot.cli import sync_commands

    monkeypatch.setenv("CLINICBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.setenv("CLINICBOT_SECRET_KEY", TEST_KEY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(registry.OVERRIDES, "caldav", memory_adapter.INTEGRATION)
    for group in (sync_commands.connection, sync_commands.calendar, sync_commands.sync, sync_commands.appointments):
        cli_pkg._merge(cli_pkg.main, group)
    return cli_pkg.main


def run(cli: click.Group, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_connect_set_roles_sync_and_list(cli: click.Group) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    memory_adapter.SERVERS.clear()
    for name in ("bookings", "outlook"):
        memory_adapter.SERVERS[f"memory://x/{name}"] = MemoryServer()
    memory_adapter.SERVERS["memory://x/bookings"].put(EventData(
        uid="b1", summary="Physio", start=start, end=start + timedelta(minutes=30), client_name="Jane Roe",
        service="Physio"))
    run(cli, "practice", "create", "Clinic", "--tz", "UTC")
    run(cli, "practitioner", "add", "Dr Lee")
    out = json.loads(run(cli, "connection", "add", "caldav", "--url", "memory://x/bookings", "--practitioner",
                         "dr-lee", "--json"))
    assert out["calendars"][0]["role"] == "busy"
    run(cli, "connection", "add", "caldav", "--url", "memory://x/outlook", "--practitioner", "dr-lee")
    cals = json.loads(run(cli, "calendar", "list", "--json"))
    assert {"id", "name", "url", "connection", "role", "projection", "sync_enabled"} <= set(cals[0])
    run(cli, "calendar", "set", str(cals[0]["id"]), "--role", "source")
    run(cli, "calendar", "set", str(cals[1]["id"]), "--role", "mirror", "--projection", "busy")
    summary = json.loads(run(cli, "sync", "run", "--json"))
    assert summary["created"] == 1 and summary["failed"] == 0
    assert {"created", "updated", "deleted", "conflicts", "failed", "seconds"} <= set(summary)
    (copy,) = memory_adapter.SERVERS["memory://x/outlook"].items.values()
    assert copy.event.summary == "Busy"
    again = run(cli, "sync", "run")
    assert "0 created, 0 updated, 0 deleted, 0 conflicts, 0 failed" in again
    status = json.loads(run(cli, "sync", "status", "--json"))
    assert [s["pending_ops"] for s in status] == [0, 0] and all(s["healthy"] for s in status)
    appts = json.loads(run(cli, "appointments", "list", "--date", start.date().isoformat(), "--json"))
    assert [(a["client"], a["status"]) for a in appts] == [("J.R.", "confirmed")]
    assert "Jane" not in run(cli, "appointments", "list", "--date", start.date().isoformat())


def test_bad_input_gets_one_clear_line(cli: click.Group) -> None:
    run(cli, "practice", "create", "Clinic", "--tz", "UTC")
    result = CliRunner().invoke(cli, ["calendar", "set", "99", "--role", "mirror"])
    assert result.exit_code == 1 and "there is no calendar 99" in result.output
    result = CliRunner().invoke(cli, ["connection", "add", "caldav", "--url", "memory://nope",
                                      "--password-env", "CB_TEST_UNSET_VAR"])
    assert result.exit_code == 1 and "CB_TEST_UNSET_VAR is not set" in result.output
    result = CliRunner().invoke(cli, ["appointments", "list", "--date", "tomorrow"])
    assert result.exit_code == 1 and "is not a date" in result.output


def test_connection_refresh_adds_calendars_found_later(cli: click.Group) -> None:
    memory_adapter.SERVERS.clear()
    memory_adapter.SERVERS["memory://y/bookings"] = MemoryServer()
    run(cli, "practice", "create", "Clinic", "--tz", "UTC")
    added = json.loads(run(cli, "connection", "add", "caldav", "--url", "memory://y/", "--json"))
    assert [c["name"] for c in added["calendars"]] == ["bookings"]
    memory_adapter.SERVERS["memory://y/rooms"] = MemoryServer()
    refreshed = json.loads(run(cli, "connection", "refresh", str(added["connection"]), "--json"))
    assert refreshed["added"] == 1 and sorted(c["name"] for c in refreshed["calendars"]) == ["bookings", "rooms"]
    assert "0 new calendars" in run(cli, "connection", "refresh", str(added["connection"]))
    gone = CliRunner().invoke(cli, ["connection", "refresh", "99"])
    assert gone.exit_code == 1 and "no connection 99" in gone.output
