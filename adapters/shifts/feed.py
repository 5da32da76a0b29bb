"""A published schedule as an iCalendar feed, read into a ShiftSnapshot with the kit's iCalendar reader.

Schedulers publish one VEVENT per assignment. What a shift is made of, per field (the first that has
a value wins):
- shift id: the event's UID (stable across fetches of the feed);
- person: `X-SHIFT-PERSON`, the first individual ATTENDEE's CN, or the part of a
  "Assignment - Person" SUMMARY after the separator;
- identity fields: `X-SHIFT-UNIQUEID` and `X-SHIFT-CUSTOM1` ... `X-SHIFT-CUSTOM4`; without
  X-SHIFT-UNIQUEID, the ATTENDEE's mailto address is the UniqueID (feeds that name staff by e-mail);
- assignment: `X-SHIFT-ASSIGNMENT`, else the SUMMARY (without the person part);
- notes: DESCRIPTION; published: STATUS other than TENTATIVE or CANCELLED.
A repeating event, or one clinicbot cannot read, fails the whole feed naming its line: nothing is
imported from a feed that did not read whole (a shift left out would be a shift removed).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from adapters.kit.feeds import FeedFetcher
from adapters.kit.ical import Component, parse_components
from adapters.kit.ical.contentlines import located, unescape_text
from adapters.kit.ical.reader import ReadProblem, events_from_calendar
from sync.contract import BadPayload, ConnectionInfo, Refused
from sync.contract.shifts import Shift, ShiftPerson, ShiftSnapshot

__all__ = ["MAX_FEED_BYTES", "parse_ics", "read_feed"]

PROVIDER = "shifts"
MAX_FEED_BYTES = 10 * 1024 * 1024
MAX_SHIFTS = 100_000
_SEPARATORS = (" - ", " – ", " — ", ": ")


def _bad(message: str, line: int | None = None) -> BadPayload:
    where = f"line {line}: " if line else ""
    return BadPayload(f"schedule feed: {where}{message}", line=line, provider=PROVIDER)


def _text(component: Component, name: str) -> str:
    prop = component.first(name)
    return unescape_text(prop.value).strip() if prop is not None else ""


def _mailto(value: str) -> str:
    value = value.strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    return value if "@" in value and " " not in value else ""


def _attendee(component: Component) -> tuple[str, str]:
    """(name, address) of the first individual attendee."""
    for prop in component.all("ATTENDEE"):
        if (prop.param("CUTYPE") or "INDIVIDUAL").upper() not in ("INDIVIDUAL", "UNKNOWN"):
            continue
        name = (prop.param("CN") or "").strip().strip('"').strip()
        address = _mailto(prop.value)
        if name or address:
            return name, address
    return "", ""


def _split(summary: str) -> tuple[str, str]:
    """(assignment, person) from "Assignment - Person"; ("", "") when the SUMMARY has no such shape."""
    for sep in _SEPARATORS:
        left, found, right = summary.partition(sep)
        if found and left.strip() and right.strip() and sep not in right:
            return left.strip(), right.strip()
    return "", ""


def parse_ics(name: str, data: bytes, zone_name: str) -> ShiftSnapshot:
    """Read a schedule feed; BadPayload naming the line of the first event that cannot be a shift."""
    try:
        shifts = _shifts(parse_components(data), zone_name)
    except BadPayload as exc:
        if exc.line:
            raise
        # The fast pass keeps no line numbers: read again line by line so the error names its line.
        shifts = _shifts(located(data), zone_name)
    zone = ZoneInfo(zone_name)
    start = min(s.start for s in shifts).astimezone(zone)
    end = max(s.end for s in shifts).astimezone(zone)
    return ShiftSnapshot(
        shifts=tuple(shifts),
        start=datetime.combine(start.date(), time(0), tzinfo=zone),
        end=datetime.combine(end.date() + timedelta(days=1), time(0), tzinfo=zone),
        origin=name,
    )


def _shifts(calendars: list[Component], zone_name: str) -> list[Shift]:
    shifts: list[Shift] = []
    seen: set[str] = set()
    for calendar in calendars:
        problems: list[ReadProblem] = []
        events = {e.uid: e for e in events_from_calendar(calendar, default_tz=zone_name, problems=problems)
                  if e.recurrence_id is None}
        if problems:
            raise _bad(problems[0].text())
        for component in calendar.children:
            if component.name != "VEVENT":
                continue
            line = component.line or None
            uid = _text(component, "UID")
            if component.first("RECURRENCE-ID") is not None or component.first("RRULE") is not None:
                raise _bad(f"event {uid or '(no UID)'} repeats; a schedule feed lists each shift as its own event",
                           line)
            event = events.get(uid)
            if not uid or event is None:
                raise _bad("an event without a UID: the shift needs a stable id", line)
            if uid in seen:
                raise _bad(f"UID {uid!r} is on two events", line)
            if len(uid) > 200:
                raise _bad("a UID longer than 200 characters", line)
            seen.add(uid)
            if event.all_day:
                raise _bad(f"event {uid} is all day; a shift needs its start and end times", line)
            shifts.append(_shift(component, event.summary, event.start, event.end, uid, line))
            if len(shifts) > MAX_SHIFTS:
                raise _bad(f"more than {MAX_SHIFTS} shifts in one feed", line)
    if not shifts:
        raise _bad("the feed holds no shifts")
    return shifts


def _shift(component: Component, summary: str, start: datetime, end: datetime, uid: str, line: int | None) -> Shift:
    attendee_name, address = _attendee(component)
    split_assignment, split_person = _split(summary)
    person_name = _text(component, "X-SHIFT-PERSON") or attendee_name or split_person
    if not person_name:
        raise _bad(f"event {uid} names no person (X-SHIFT-PERSON, an ATTENDEE, or \"Assignment - Person\")", line)
    assignment = _text(component, "X-SHIFT-ASSIGNMENT") or (
        split_assignment if split_person and split_person == person_name else summary.strip())
    if not assignment:
        raise _bad(f"event {uid} has no assignment (SUMMARY)", line)
    if end <= start or end - start > timedelta(days=7):
        raise _bad(f"event {uid} must end after it starts and last at most 7 days", line)
    status = _text(component, "STATUS").upper()
    return Shift(
        key=uid,
        person=ShiftPerson(
            name=person_name[:200],
            unique_id=_text(component, "X-SHIFT-UNIQUEID") or address,
            custom1=_text(component, "X-SHIFT-CUSTOM1"),
            custom2=_text(component, "X-SHIFT-CUSTOM2"),
            custom3=_text(component, "X-SHIFT-CUSTOM3"),
            custom4=_text(component, "X-SHIFT-CUSTOM4"),
        ),
        assignment=assignment[:200],
        start=start,
        end=end,
        notes=_text(component, "DESCRIPTION")[:4000],
        published=status not in ("TENTATIVE", "CANCELLED"),
    )


async def read_feed(conn: ConnectionInfo, host: Any, zone_name: str) -> ShiftSnapshot:
    """Fetch the connection's schedule feed (its URL is stored encrypted) and read it off the event loop."""
    url = str((conn.credentials or {}).get("feed_url") or "")
    if not url:
        raise Refused("no schedule feed is set: `clinicbot shifts feed URL`", provider=PROVIDER)
    # Only a plain httpx transport is for the feed (a test's loopback); Graph's pair of hooks is not.
    transport = conn.transport if isinstance(conn.transport, httpx.AsyncBaseTransport) else None
    fetcher = FeedFetcher(allow_private_urls=bool(getattr(host, "allow_private_urls", False)),
                          transport=transport, max_bytes=MAX_FEED_BYTES, provider=PROVIDER)
    try:
        fetched = await fetcher.fetch(url)
    finally:
        await fetcher.aclose()
    assert fetched.body is not None  # an unconditional GET never answers 304
    return await asyncio.to_thread(parse_ics, f"feed {urlsplit(url).hostname or 'feed'}", fetched.body, zone_name)
