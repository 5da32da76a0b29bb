"""A Jane-like booking feed, as a clinic connects it: `clinicbot connection add ics` for Dr Lee, then
`/clinic today` in Slack names each booking's client and service, and Dr Lee's Radicale mirror shows
service and initials. `pattern` in chat changes how the feed's titles are read, and the next sync
reads the bookings again that way."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sync.services.connections import add_connection
from tests.adapters.ics.fakes.ics_feed import FeedServer
from tests.bot.slack.conftest import SlackClient
from tests.e2e.conftest import DAY, Practice
from tests.e2e.test_settings_slack import refused_at_once, say

TZ_LINE = "X-WR-TIMEZONE:Australia/Adelaide"


def _jane_feed(summaries: list[str], places: list[str] | None = None) -> str:
    """What a Jane-like scheduler publishes: "Service - Client" titles and the clinic as LOCATION."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Jane-like booking export//synthetic//EN", TZ_LINE]
    for n, summary in enumerate(summaries):
        place = (places or [])[n] if n < len(places or []) else "Northside Clinic"
        lines += ["BEGIN:VEVENT", f"UID:jane-{n}@booking.example", "DTSTAMP:20260101T000000Z",
                  f"DTSTART;TZID=Australia/Adelaide:{DAY:%Y%m%d}T{13 + n:02d}0000", "DURATION:PT45M",
                  f"SUMMARY:{summary}", f"LOCATION:{place}", "END:VEVENT"]
    return "\r\n".join([*lines, "END:VCALENDAR"]) + "\r\n"


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


async def test_a_jane_feed_shows_client_and_service(slack: SlackClient, clinic: Practice,
                                                    feeds: FeedServer) -> None:
    feeds.publish("/lee.ics", _jane_feed(["Physiotherapy - Jane Roe", "Massage Therapy: John Doe"]))
    # As `clinicbot connection add ics --url ... --practitioner dr-lee` does.
    added = await add_connection(clinic.core, "ics", feeds.url("/lee.ics"), practitioner="dr-lee", actor="cli:e2e")
    queue = clinic.core.services.sync_queue
    queue.request(added.connection_id, reason="e2e")
    await queue.drain()
    await clinic.outbox_settled()

    agenda = await say(slack, "today")
    for expected in ("Jane Roe", "Physiotherapy", "John Doe", "Massage Therapy"):
        assert expected in agenda, agenda
    copies = {c.event.summary for c in await clinic.events(clinic.mirror_url)}
    assert {"Physiotherapy (J.R.)", "Massage Therapy (J.D.)"} <= copies, copies

    # This clinic's feed puts the client first: staff say so, and the bookings are read again.
    answer = await say(slack, "pattern ics client-service")
    assert "now read with the client-service pattern" in answer, answer
    queue.request(added.connection_id, reason="e2e")
    await queue.drain()
    await clinic.outbox_settled()
    copies = {c.event.summary for c in await clinic.events(clinic.mirror_url)}
    assert "Jane Roe (P.)" in copies, copies
    [entry] = await clinic.audit("connection.option")
    assert (entry.actor, entry.before, entry.after) == (
        "slack:T1/US", {"summary_pattern": "auto"}, {"summary_pattern": "client-service"})
    refused = await say(slack, "pattern caldav client-service")
    assert "a caldav connection has no option 'summary-pattern'" in refused, refused


async def test_bookings_are_placed_at_locations_and_agendas_filter_by_them(
    slack: SlackClient, clinic: Practice, feeds: FeedServer
) -> None:
    feeds.publish("/lee.ics", _jane_feed(["Physiotherapy - Jane Roe", "Massage Therapy - John Doe"],
                                         ["Northside Clinic, 12 High St", "Southside Rooms"]))
    added = await add_connection(clinic.core, "ics", feeds.url("/lee.ics"), practitioner="dr-lee", actor="cli:e2e")
    queue = clinic.core.services.sync_queue
    queue.request(added.connection_id, reason="e2e")
    await queue.drain()
    assert "No locations yet" in await say(slack, "locations")

    # Added after the bookings arrived: the ones the feed puts there are placed at once.
    assert "Northside is a location" in await say(slack, "location add Northside")
    northside = await say(slack, "today at Northside")
    assert "Jane Roe" in northside and "John Doe" not in northside and "at Northside" in northside, northside
    assert "Jane Roe" in await say(slack, "today @dr-lee at northside")
    assert "No appointments" in await say(slack, "tomorrow at Northside")
    unknown = await say(slack, "today at Nowhere")
    assert "no location is called 'Nowhere'" in unknown and "Northside" in unknown, unknown

    # A location added with its other name; a booking synced later is placed as it is imported.
    assert "Southside is a location" in await say(slack, "location add Southside")
    feeds.publish("/lee.ics", _jane_feed(["Physiotherapy - Jane Roe", "Massage Therapy - John Doe",
                                          "Physiotherapy - Ann Other"],
                                         ["Northside Clinic, 12 High St", "Southside Rooms", "NORTHSIDE"]))
    queue.request(added.connection_id, reason="e2e")
    await queue.drain()
    northside = await say(slack, "today at Northside")
    assert "Jane Roe" in northside and "Ann Other" in northside and "John Doe" not in northside, northside
    assert "John Doe" in await say(slack, "today at Southside")
    assert "Northside" in await say(slack, "locations")

    # Free times at a location, for a service: its usual length (45 min here), around the bookings.
    free = await say(slack, "slots today afternoon physiotherapy at Northside")
    assert "at Northside" in free and "(45 min)" in free and "Dr Lee: 12:00, 15:45" in free, free
    assert "Dr Lee: 08:00" in await say(slack, "slots today morning @dr-lee")
    unknown = await refused_at_once(slack, "slots someday")
    assert "someday" in unknown, unknown
    refused = await say(slack, "location add Eastside", user="UX")
    assert "no role" in refused or "only admins" in refused
    [entry, _] = await clinic.audit("location.add")
    assert entry.actor == "slack:T1/US" and entry.details == {"location_id": entry.details["location_id"],
                                                                "placed": 1}
