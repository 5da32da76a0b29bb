"""`clinicbot location add|list`: a location with other names, more names later, and a booking synced
from a calendar whose LOCATION is one of them placed there; audited as the CLI user."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click
from click.testing import CliRunner

from sync.contract.items import EventData
from tests.bot.cli.test_sync_commands import cli, run  # noqa: F401  (the fixture)
from tests.fakes.memory_calendar import MemoryServer
from tests.sync import memory_adapter


def test_locations_from_the_cli(cli: click.Group) -> None:  # noqa: F811
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    memory_adapter.SERVERS.clear()
    memory_adapter.SERVERS["memory://x/bookings"] = server = MemoryServer()
    server.put(EventData(uid="b1", summary="Physio", start=start, end=start + timedelta(minutes=30),
                         client_name="Jane Roe", service="Physio", location="LQ7SQUARE"))
    run(cli, "practice", "create", "Clinic", "--tz", "UTC")
    added = json.loads(run(cli, "location", "add", "Northside", "--address", "12 High St", "--ref",
                           "Northside Clinic", "--json"))
    assert (added["name"], added["refs"]) == ("Northside", "Northside Clinic")
    conn = json.loads(run(cli, "connection", "add", "caldav", "--url", "memory://x/bookings", "--json"))
    run(cli, "calendar", "set", str(conn["calendars"][0]["id"]), "--role", "source")
    run(cli, "sync", "run")
    # The platform's id for the place, given later as another name: the booking is placed now.
    again = json.loads(run(cli, "location", "add", "northside", "--ref", "LQ7SQUARE", "--json"))
    assert again["id"] == added["id"] and again["refs"] == "Northside Clinic, LQ7SQUARE"
    listed = json.loads(run(cli, "location", "list", "--json"))
    assert [(r["name"], r["address"]) for r in listed] == [("Northside", "12 High St")]
    bad = CliRunner().invoke(cli, ["location", "add", "Eastside", "--tz", "Mars/Olympus"])
    assert bad.exit_code == 1 and "unknown time zone" in bad.output
    entries = [json.loads(line) for line in run(cli, "audit", "export").splitlines() if line.strip()]
    placed = [(e["action"], e["details"].get("placed")) for e in entries if e["action"].startswith("location.")]
    assert placed == [("location.add", 0), ("location.refs", 1)]
    assert all(e["actor"].startswith("cli:") for e in entries if e["action"].startswith("location."))
