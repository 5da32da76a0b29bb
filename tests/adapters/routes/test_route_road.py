"""A Jane App clinic follows clinicbot's own words: `connection add jane` names the feed command, the admin
runs it with the practitioner's feed address, and after a sync the booking is in the day's appointments."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.adapters.ics.fakes.ics_feed import FeedServer
from tests.servers import run_cli

LOOPBACK = {"CLINICBOT_ALLOW_PRIVATE_URLS": "true"}  # the test feed is on loopback


def _feed(start: datetime) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    return "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Jane-like test feed//EN", "BEGIN:VEVENT",
        "UID:jane-appt-1@feed.test", f"DTSTAMP:{start:{stamp}}", f"DTSTART:{start:{stamp}}",
        f"DTEND:{start + timedelta(minutes=45):{stamp}}", "SUMMARY:Acupuncture - J. R.", "END:VEVENT",
        "END:VCALENDAR", ""])


def test_jane_route_leads_to_the_booking_in_the_days_appointments(tmp_path: Path) -> None:
    start = (datetime.now(UTC) + timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)

    async def scenario() -> None:
        run = functools.partial(asyncio.to_thread, run_cli)
        async with FeedServer() as feeds:
            feeds.publish("/jane/dr-lee.ics", _feed(start))
            assert (await run(["db", "upgrade"], tmp_path)).returncode == 0
            assert (await run(["practice", "create", "Clinic", "--tz", "UTC"], tmp_path)).returncode == 0
            assert (await run(["practitioner", "add", "Dr Lee"], tmp_path)).returncode == 0
            route = await run(["connection", "add", "jane"], tmp_path)
            assert route.returncode == 2, route.stderr
            command = re.search(r"`clinicbot (connection add ics --url <feed address> --practitioner "
                                r"<practitioner>)`", route.stdout)
            assert command, route.stdout
            words = command.group(1).replace("<feed address>", feeds.url("/jane/dr-lee.ics"))
            added = await run(words.replace("<practitioner>", "dr-lee").split(), tmp_path, LOOPBACK)
            assert added.returncode == 0, added.stderr
            synced = await run(["sync", "run"], tmp_path, LOOPBACK)
            assert synced.returncode == 0, synced.stderr
            listed = await run(["appointments", "list", "--date", start.date().isoformat(), "--json"], tmp_path)
            assert listed.returncode == 0, listed.stderr
            [row] = json.loads(listed.stdout)
            # The feed's "Service - Client" title is read as such (issue 22): service, and the client's initials.
            assert (row["practitioner"], row["service"], row["client"]) == ("Dr Lee", "Acupuncture", "J.R.")
            assert row["start"] == start.isoformat()

    asyncio.run(scenario())
