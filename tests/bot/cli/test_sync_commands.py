"""The sync admin commands end to end: connect, set roles, run, status, list (tables and --json)."""

from __future__ import annotations

import asyncio
import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner

from sync.contract.items import EventData
from sync.integrations import registry
from tests.bot.cli.kit import cli_env, run
from tests.fakes.memory_calendar import MemoryServer
from tests.servers import run_cli
from tests.sync import memory_adapter


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> click.Group:
    import bot.cli as cli_pkg
    from bot.cli import sync_commands

    cli_env(tmp_path, monkeypatch)
    monkeypatch.setitem(registry.OVERRIDES, "caldav", memory_adapter.INTEGRATION)
    for group in (sync_commands.connection, sync_commands.calendar, sync_commands.sync, sync_commands.appointments):
        cli_pkg._merge(cli_pkg.main, group)
    return cli_pkg.main


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


def test_a_refused_connection_shows_its_reason_in_sync_status_and_the_log(tmp_path: Path) -> None:
    """Added from a shell that allowed loopback feeds; synced by a process whose environment does not."""
    from tests.adapters.ics.fakes.ics_feed import FeedServer

    async def scenario() -> None:
        async with FeedServer() as feeds:
            feeds.publish("/clinic.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nEND:VCALENDAR\r\n")
            url = feeds.url("/clinic.ics")
            run = functools.partial(asyncio.to_thread, run_cli)
            assert (await run(["db", "upgrade"], tmp_path)).returncode == 0
            added = await run(["connection", "add", "ics", "--url", url], tmp_path,
                              {"CLINICBOT_ALLOW_PRIVATE_URLS": "true"})
            assert added.returncode == 0, added.stderr
            synced = await run(["sync", "run"], tmp_path)
            assert "Refused" in synced.stderr and "loopback address" in synced.stderr, synced.stderr
            status = await run(["sync", "status"], tmp_path, {"COLUMNS": "100"})
            table = status.stdout
            assert "failing" in table and "active" not in table, table
            assert "Refused" in table and "loopback" in table, table
            assert "…" not in table, "nothing is cut off"
            as_json = json.loads((await run(["sync", "status", "--json"], tmp_path)).stdout)
            reason = as_json[0]["last_error"]
            assert "CLINICBOT_ALLOW_PRIVATE_URLS=true" in reason and "ask the operator" not in reason

    asyncio.run(scenario())


def test_appointments_list_names_practitioners_in_the_practice_zone_with_the_summary(cli: click.Group) -> None:
    start = (datetime.now(UTC) + timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    memory_adapter.SERVERS.clear()
    memory_adapter.SERVERS["memory://x/plain"] = MemoryServer()
    # A plain calendar event: no structured service or client, only its summary.
    memory_adapter.SERVERS["memory://x/plain"].put(EventData(
        uid="p1", summary="Team supervision", start=start, end=start + timedelta(minutes=45)))
    run(cli, "practice", "create", "Clinic", "--tz", "Asia/Kolkata")
    run(cli, "practitioner", "add", "Dr Ann Lee")
    run(cli, "connection", "add", "caldav", "--url", "memory://x/plain", "--practitioner", "dr-lee")
    cal = json.loads(run(cli, "calendar", "list", "--json"))[0]
    run(cli, "calendar", "set", str(cal["id"]), "--role", "source")
    run(cli, "sync", "run")
    local = start.astimezone(ZoneInfo("Asia/Kolkata"))
    [row] = json.loads(run(cli, "appointments", "list", "--date", local.date().isoformat(), "--json"))
    assert row["practitioner"] == "Dr Ann Lee" and row["summary"] == "Team supervision"
    assert row["start"] == local.isoformat()
    table = run(cli, "appointments", "list", "--date", local.date().isoformat())
    assert "Dr Ann Lee" in table and "Team supervision" in table and f"{local:%H:%M}" in table, table
    assert "Asia/Kolkata" in table


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
