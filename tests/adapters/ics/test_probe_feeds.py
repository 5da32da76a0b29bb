"""The six probe feeds of issue 20 give the same visits on every path as recurring-ical-events:
the agenda (sync.services.appointments.between, which the slot check uses too), the reminder sweep's
visit starts (sync.engine.series.visit_starts) and free/busy (IcsFeed.free_busy). Each feed isolates one
cause: a custom VTIMEZONE, a cancelled visit, a visit made all-day, a DTSTART the rule does not
produce, an RDATE, one broken event in 200."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
import recurring_ical_events
from sqlalchemy import update

from adapters.ics.feed import IcsFeed
from sync.contract.items import Window
from sync.engine.run import sync_connection
from sync.engine.series import visit_starts
from sync.runtime.core import Core
from sync.services import appointments as svc
from sync.store.model import Appointment, Connection
from tests.adapters.ics.fakes.ics_feed import FeedServer
from tests.adapters.ics.test_feed import provider
from tests.sync.helpers import make_clinic

PROBES = Path(__file__).parents[1] / "kit" / "ical" / "probes"
SPAN = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))

Visit = tuple[datetime, datetime]


def _utc(value: date | datetime) -> datetime:
    if not isinstance(value, datetime):  # a floating date: read in UTC, as the feed has no zone
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def theirs(text: bytes) -> list[Visit]:
    """recurring-ical-events' visits: cancelled ones left out (they show in no agenda)."""
    calendar = icalendar.Calendar.from_ical(text)
    found = []
    for event in recurring_ical_events.of(calendar).between(SPAN.start, SPAN.end):
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        start = _utc(event.decoded("DTSTART"))
        end = _utc(event.decoded("DTEND")) if "DTEND" in event else start + event.decoded("DURATION", timedelta(0))
        found.append((start, max(start, end)) if end >= start else (end, start))
    return sorted(found)


async def _synced(core: Core, feeds: FeedServer, name: str, body: bytes | None = None) -> tuple[Any, IcsFeed]:
    clinic = await make_clinic(core, mirrors=0)
    feeds.publish(f"/{name}", body if body is not None else (PROBES / name).read_bytes())
    url = feeds.url(f"/{name}")
    clinic.factory = lambda conn, cal: provider(url)
    core.services.provider_factory = clinic.factory
    clinic.now = datetime(2026, 6, 1, tzinfo=UTC)
    async with core.store.session() as s:
        await s.execute(update(Connection).values(window_days_back=200, window_days_ahead=220))
    report = await sync_connection(core, clinic.connections["source"])
    assert report.failed == 0
    return clinic, provider(url)


async def paths(core: Core, feeds: FeedServer, name: str, body: bytes | None = None) -> tuple[list[Visit], list[Visit]]:
    """(agenda visits, free/busy intervals) of one feed, synced into the database."""
    _, feed = await _synced(core, feeds, name, body)
    async with core.store.session() as s:
        rows = await svc.between(s, SPAN.start, SPAN.end, Appointment.status != "cancelled")
        agenda = sorted((a.start.astimezone(UTC), a.end.astimezone(UTC)) for a in rows)
    busy = sorted((b.start.astimezone(UTC), b.end.astimezone(UTC)) for b in await feed.free_busy(SPAN))
    await feed.aclose()
    return agenda, busy


def _cal(*lines: str) -> bytes:
    return ("\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", *lines, "END:VCALENDAR"])
            + "\r\n").encode()


CASES = {
    # Outlook: an all-day series whose moved visit names its old day by a date-time (bug 4).
    "allday_rid_datetime": _cal(
        "BEGIN:VEVENT", "UID:ad", "DTSTART;VALUE=DATE:20260414", "DTEND;VALUE=DATE:20260415",
        "RRULE:FREQ=DAILY;COUNT=5", "SUMMARY:Away", "END:VEVENT",
        "BEGIN:VEVENT", "UID:ad", "RECURRENCE-ID;TZID=Europe/Berlin:20260416T000000", "DTSTART;VALUE=DATE:20260420",
        "DTEND;VALUE=DATE:20260421", "SUMMARY:Away (moved)", "END:VEVENT"),
    # A DATE EXDATE on a timed series leaves out that day's visit (bug 6).
    "date_exdate": _cal(
        "BEGIN:VEVENT", "UID:de", "DTSTART;TZID=Europe/Berlin:20260105T090000",
        "DTEND;TZID=Europe/Berlin:20260105T093000", "RRULE:FREQ=DAILY;COUNT=6", "EXDATE;VALUE=DATE:20260107",
        "SUMMARY:x", "END:VEVENT"),
    # Zimbra: two RRULEs (bug 6).
    "two_rrules": _cal(
        "BEGIN:VEVENT", "UID:tr", "DTSTART;TZID=America/New_York:20260105T080000",
        "DTEND;TZID=America/New_York:20260105T083000", "RRULE:FREQ=WEEKLY;COUNT=4;BYDAY=MO",
        "RRULE:FREQ=MONTHLY;COUNT=3;BYMONTHDAY=20", "SUMMARY:x", "END:VEVENT"),
    # RECURRENCE-ID;RANGE=THISANDFUTURE: this visit and every later one move by 2 h and last 1 h (bug 6).
    "thisandfuture": _cal(
        "BEGIN:VEVENT", "UID:tf", "DTSTART;TZID=Europe/Berlin:20260105T090000",
        "DTEND;TZID=Europe/Berlin:20260105T093000", "RRULE:FREQ=WEEKLY;COUNT=10", "SUMMARY:x", "END:VEVENT",
        "BEGIN:VEVENT", "UID:tf", "RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Berlin:20260126T090000",
        "DTSTART;TZID=Europe/Berlin:20260126T110000", "DTEND;TZID=Europe/Berlin:20260126T120000", "SUMMARY:later",
        "END:VEVENT"),
    # A repeated UID: the copy with the higher SEQUENCE wins (bug 6).
    "sequence": _cal(
        "BEGIN:VEVENT", "UID:sq", "SEQUENCE:1", "DTSTART:20260105T070000Z", "DTEND:20260105T080000Z",
        "RRULE:FREQ=DAILY;COUNT=2", "SUMMARY:x", "END:VEVENT",
        "BEGIN:VEVENT", "UID:sq", "SEQUENCE:2", "DTSTART:20260105T100000Z", "DTEND:20260105T110000Z",
        "RRULE:FREQ=DAILY;COUNT=2", "SUMMARY:x", "END:VEVENT"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_each_fidelity_case_matches_recurring_ical_events(core: Core, feeds: FeedServer, case: str) -> None:
    expected = theirs(CASES[case])
    if case == "sequence":  # recurring-ical-events keeps the first copy; RFC 5545 says the higher SEQUENCE wins
        expected = [(datetime(2026, 1, d, 10, tzinfo=UTC), datetime(2026, 1, d, 11, tzinfo=UTC)) for d in (5, 6)]
    agenda, busy = await paths(core, feeds, f"{case}.ics", CASES[case])
    assert agenda == expected
    assert busy == expected


@pytest.mark.parametrize("name", sorted(p.name for p in PROBES.glob("p*.ics")))
async def test_every_path_gives_the_visits_recurring_ical_events_gives(
    core: Core, feeds: FeedServer, name: str
) -> None:
    expected = theirs((PROBES / name).read_bytes())
    if name.startswith("p6"):  # the reversed event is read with its ends swapped (see test_robust)
        expected = sorted((min(s, e), max(s, e)) for s, e in expected)
    _, feed = await _synced(core, feeds, name)
    async with core.store.session() as s:
        rows = await svc.between(s, SPAN.start, SPAN.end, Appointment.status != "cancelled")
        agenda = sorted((a.start.astimezone(UTC), a.end.astimezone(UTC)) for a in rows)
        starts = await visit_starts(s, SPAN.start, SPAN.end)
    busy = sorted((b.start.astimezone(UTC), b.end.astimezone(UTC)) for b in await feed.free_busy(SPAN))
    await feed.aclose()
    assert agenda == expected
    assert busy == expected
    series_starts = sorted(t.astimezone(UTC) for ts in starts.values() for t in ts)
    assert set(series_starts) <= {s for s, _ in expected}
