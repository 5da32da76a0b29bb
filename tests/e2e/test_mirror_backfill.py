"""A mirror added after appointments exist receives every one of them (issue 22, item 1).

Everything a user does goes through the CLI (`clinicbot connection add`, `connection refresh`,
`calendar set`, `sync run`, `sync status`) against a real Radicale; the test only plays the booking
system (PUTs on the source calendar) and reads Radicale back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from adapters.caldav import open_calendar
from adapters.caldav.resources import resource_name
from adapters.kit.ical import serialize_calendar
from sync.contract import ConnectionInfo
from sync.contract.items import EventData, Window
from tests.adapters.caldav.fakes.radicale import RadicaleServer
from tests.conftest import TEST_KEY, drop_schema, make_settings


@pytest.fixture
def cli(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> click.Group:
    import bot.cli as cli_pkg

    settings = make_settings(backend, tmp_path)
    monkeypatch.setenv("CLINICBOT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CLINICBOT_DATABASE_SCHEMA", settings.database_schema)
    monkeypatch.setenv("CLINICBOT_SECRET_KEY", TEST_KEY)
    monkeypatch.setenv("CLINICBOT_ALLOW_PRIVATE_URLS", "true")
    monkeypatch.setenv("RADICALE_PASSWORD", "unused")
    monkeypatch.chdir(tmp_path)
    yield cli_pkg.main
    asyncio.run(drop_schema(settings))


def run(cli: click.Group, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _bookings(uid_prefix: str) -> list[EventData]:
    """Three bookings over the coming days, as a booking system writes them."""
    base = datetime.combine(datetime.now(UTC).date() + timedelta(days=2), time(9), UTC)
    return [
        EventData(uid=f"{uid_prefix}-{i}", summary=f"Physio: Client {i}", start=base + timedelta(days=i, hours=i),
                  end=base + timedelta(days=i, hours=i, minutes=45), tzid="UTC", client_name=f"Client Number{i}",
                  service="Physio")
        for i in range(3)
    ]


async def _put(radicale: RadicaleServer, url: str, user: str, event: EventData) -> None:
    async with radicale.client(user) as client:
        response = await client.put(url + resource_name(event.uid), content=serialize_calendar([event]).encode(),
                                    headers={"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"})
    assert response.status_code == 201, response.text


async def _copies(radicale: RadicaleServer, url: str, user: str, tmp_path: Path) -> list[EventData]:
    """Every event on a Radicale calendar over the coming weeks, read back through the real adapter."""
    info = ConnectionInfo(provider="caldav", account=user, config={"url": url},
                          credentials={"username": user, "password": "unused"})
    provider = open_calendar(info, url, make_settings("sqlite", tmp_path, allow_private_urls=True))
    now = datetime.now(UTC)
    try:
        found = await provider.changes(None, Window(now - timedelta(days=1), now + timedelta(days=30)))
    finally:
        await provider.aclose()
    return sorted((i.event for i in found.items), key=lambda e: e.start)


def test_a_mirror_added_on_day_two_gets_every_existing_appointment(
    cli: click.Group, radicale: RadicaleServer, tmp_path: Path
) -> None:
    user = f"clinic-{uuid.uuid4().hex[:8]}"
    source_url = asyncio.run(radicale.make_calendar(user, "bookings", display_name="Bookings"))
    run(cli, "db", "upgrade")
    run(cli, "practice", "create", "Lee Clinic", "--tz", "UTC")
    run(cli, "practitioner", "add", "Dr Lee")
    added = json.loads(run(cli, "connection", "add", "caldav", "--url", radicale.base_url + "/", "--username", user,
                           "--password-env", "RADICALE_PASSWORD", "--practitioner", "dr-lee", "--json"))
    (source,) = added["calendars"]
    run(cli, "calendar", "set", str(source["id"]), "--role", "source")
    bookings = _bookings(user)
    for event in bookings:
        asyncio.run(_put(radicale, source_url, user, event))
    assert json.loads(run(cli, "sync", "run", "--json"))["created"] == 3

    # Day two: the practitioner's own calendar appears, is found by a refresh and made a mirror.
    mirror_url = asyncio.run(radicale.make_calendar(user, "dr-lee", display_name="Dr Lee"))
    refreshed = json.loads(run(cli, "connection", "refresh", str(added["connection"]), "--json"))
    assert refreshed["added"] == 1
    (mirror,) = [c for c in refreshed["calendars"] if c["url"] == mirror_url]
    run(cli, "calendar", "set", str(mirror["id"]), "--role", "mirror")
    status = json.loads(run(cli, "sync", "status", "--json"))
    (progress,) = status[0]["backfill"]
    assert (progress["state"], progress["calendar"]) == ("pending", "Dr Lee")

    out = run(cli, "sync", "run")
    assert "3 existing appointments queued for copying to new mirror calendars" in out
    assert f"Calendar {mirror['id']} (Dr Lee): existing appointments copied (3)" in out
    copies = asyncio.run(_copies(radicale, mirror_url, user, tmp_path))
    assert [(c.start, c.end) for c in copies] == [(b.start, b.end) for b in bookings]
    assert [c.summary for c in copies] == ["Physio (C.N.)"] * 3  # the mirror's projection, no full names

    # Settled: the next runs finish the backfill and copy nothing twice.
    again = json.loads(run(cli, "sync", "run", "--json"))
    assert (again["backfilled"], again["created"], again["failed"], again["backfill"]) == (0, 0, 0, [])
    run(cli, "sync", "run")
    assert len(asyncio.run(_copies(radicale, mirror_url, user, tmp_path))) == 3
    listed = json.loads(run(cli, "sync", "status", "--json"))
    assert listed[0]["backfill"] == [] and listed[0]["pending_ops"] == 0 and listed[0]["failed_ops"] == 0
