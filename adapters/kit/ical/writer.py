"""EventData -> iCalendar text (one VCALENDAR with the VTIMEZONE blocks its TZIDs need)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from adapters.kit.ical.contentlines import component_text
from adapters.kit.ical.reader import X_CLIENT_EMAIL, X_CLIENT_NAME, X_ID, X_SERVICE
from adapters.kit.ical.zones import is_utc, vtimezone_lines
from sync.contract.items import EventData

__all__ = ["PRODID", "component_text", "escape_text", "fold", "serialize_calendar", "serialize_event"]

PRODID = "-//clinicbot//clinicbot 0.1//EN"


def escape_text(value: str) -> str:
    """TEXT escaping for SUMMARY, DESCRIPTION and friends."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\r", "\\n")
        .replace("\n", "\\n")
    )


def fold(line: str) -> str:
    """Fold a content line at 75 octets without splitting a UTF-8 character."""
    if len(line) <= 75 and line.isascii():
        return line
    parts: list[str] = []
    current: list[str] = []
    size, limit = 0, 75
    for char in line:
        width = len(char.encode())
        if size + width > limit:
            parts.append("".join(current))
            current, size, limit = [], 0, 74  # continuation lines start with a space
        current.append(char)
        size += width
    parts.append("".join(current))
    return "\r\n ".join(parts)


def _zone_of(event: EventData) -> str | None:
    return None if is_utc(event.tzid) else event.tzid


def _when(name: str, value: datetime, event: EventData) -> str:
    if event.all_day:
        local = value.astimezone(ZoneInfo(event.tzid)) if event.tzid else value.astimezone(UTC)
        return f"{name};VALUE=DATE:{local:%Y%m%d}"
    zone = _zone_of(event)
    if zone is None:
        return f"{name}:{value.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{name};TZID={zone}:{value.astimezone(ZoneInfo(zone)):%Y%m%dT%H%M%S}"


def _recurrence_id(event: EventData, rid: datetime) -> str:
    """RECURRENCE-ID in the value type it was read with (an override made all-day still names a
    timed occurrence, and the other way round), and its RANGE. A DATE is the day the value has in
    its own zone: read through UTC, 16 April at 00:00 in Berlin would become 15 April."""
    as_date = event.all_day if event.recurrence_all_day is None else event.recurrence_all_day
    name = "RECURRENCE-ID;RANGE=THISANDFUTURE" if event.recurrence_range == "THISANDFUTURE" else "RECURRENCE-ID"
    if as_date:
        return f"{name};VALUE=DATE:{rid:%Y%m%d}"
    zone = _zone_of(event)
    if event.all_day or zone is None:
        return f"{name}:{rid.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{name};TZID={zone}:{rid.astimezone(ZoneInfo(zone)):%Y%m%dT%H%M%S}"


def _vevent(event: EventData, stamp: str) -> list[str]:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{event.uid}",
        f"DTSTAMP:{stamp}",
        _when("DTSTART", event.start, event),
        _when("DTEND", event.end, event),
    ]
    if event.recurrence_id is not None:
        lines.append(_recurrence_id(event, event.recurrence_id))
    lines.append(f"SUMMARY:{escape_text(event.summary)}")
    if event.description:
        lines.append(f"DESCRIPTION:{escape_text(event.description)}")
    if event.location:
        lines.append(f"LOCATION:{escape_text(event.location)}")
    lines.append(f"STATUS:{event.status.upper()}")
    lines.append("TRANSP:TRANSPARENT" if event.transparent else "TRANSP:OPAQUE")
    if event.rrule:
        lines.extend(f"RRULE:{rule}" for rule in event.rrule.split("\n") if rule)
    lines.extend(_when("EXDATE", exdate, event) for exdate in event.exdates)
    lines.extend(_when("RDATE", rdate, event) for rdate in event.rdates)
    if event.categories:
        lines.append("CATEGORIES:" + ",".join(escape_text(c) for c in event.categories))
    for name, value in (
        (X_ID, event.clinicbot_id),
        (X_CLIENT_NAME, event.client_name),
        (X_CLIENT_EMAIL, event.client_email),
        (X_SERVICE, event.service),
    ):
        if value is not None:
            lines.append(f"{name}:{escape_text(value)}")
    lines.append("END:VEVENT")
    return lines


def serialize_calendar(events: Iterable[EventData], *, timezones: bool = True) -> str:
    """One VCALENDAR holding `events` (and, unless told not to, a VTIMEZONE per zone used)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    body: list[str] = []
    zones: dict[str, int] = {}
    for event in events:
        body.extend(_vevent(event, stamp))
        zone = _zone_of(event)
        if zone is not None and zone not in zones:
            zones[zone] = event.start.year
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN"]
    if timezones:
        for zone, year in zones.items():
            lines.extend(vtimezone_lines(zone, year))
    lines.extend(body)
    lines.append("END:VCALENDAR")
    return "\r\n".join(fold(line) for line in lines) + "\r\n"


def serialize_event(event: EventData, overrides: Sequence[EventData] = ()) -> str:
    """A CalDAV resource: one event (a series master with its overrides, all sharing one UID)."""
    for override in overrides:
        if override.uid != event.uid or override.recurrence_id is None:
            raise ValueError("overrides must share the master's UID and carry a recurrence_id")
    return serialize_calendar([event, *overrides])
