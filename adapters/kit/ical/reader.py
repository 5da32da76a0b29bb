"""VEVENT -> EventData.

Values are decoded here directly (dates, date-times, text, durations), which keeps 10,000 plain
events fast; the icalendar library is called only where a value is complex: a custom VTIMEZONE
(zones.py), an RRULE (validated by icalendar's vRecur) and a DURATION.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta, tzinfo

from sync.contract import BadPayload
from adapters.kit.ical.contentlines import (
    Component,
    Prop,
    located,
    parse_components,
    split_text_list,
    unescape_text,
)
from adapters.kit.ical.zones import ZoneResolver
from sync.contract.items import EventData, EventStatus

__all__ = ["X_CLIENT_EMAIL", "X_CLIENT_NAME", "X_ID", "X_SERVICE", "events_from_calendar", "parse_events"]

log = logging.getLogger("clinicbot.ical")

X_ID = "X-CLINICBOT-ID"
X_CLIENT_NAME = "X-CLINICBOT-CLIENT-NAME"
X_CLIENT_EMAIL = "X-CLINICBOT-CLIENT-EMAIL"
X_SERVICE = "X-CLINICBOT-SERVICE"

_STATUS: dict[str, EventStatus] = {
    "CONFIRMED": "confirmed",
    "TENTATIVE": "tentative",
    "CANCELLED": "cancelled",
}


def parse_events(data: str | bytes, *, default_tz: str | None = None) -> list[EventData]:
    """Every VEVENT in an iCalendar stream (series masters and overrides), in document order.

    Floating times and all-day dates are read in `default_tz` (UTC when None). Raises BadPayload,
    naming the line, for anything malformed.
    """
    try:
        return _read(parse_components(data), default_tz)
    except BadPayload as exc:
        if exc.line:
            raise
    # The fast pass keeps no line numbers; read again line by line so the error names its line.
    return _read(located(data), default_tz)


def _read(calendars: list[Component], default_tz: str | None) -> list[EventData]:
    events: list[EventData] = []
    for calendar in calendars:
        events.extend(events_from_calendar(calendar, default_tz=default_tz))
    return events


def events_from_calendar(calendar: Component, *, default_tz: str | None = None) -> list[EventData]:
    """The VEVENTs of one parsed VCALENDAR."""
    resolver = ZoneResolver(calendar, default_tz)
    return [_event(child, resolver) for child in calendar.children if child.name == "VEVENT"]


class _Moment:
    __slots__ = ("all_day", "tzid", "value")

    def __init__(self, value: datetime, all_day: bool, tzid: str | None) -> None:
        self.value = value
        self.all_day = all_day
        self.tzid = tzid


def _bad(prop: Prop, what: str) -> BadPayload:
    return BadPayload(f"line {prop.line}: {prop.name} {what}", line=prop.line)


def _moments(prop: Prop, resolver: ZoneResolver) -> list[_Moment]:
    """Decode a DATE / DATE-TIME property (possibly a comma list, as in EXDATE)."""
    zone: tzinfo | None = None
    tzid: str | None = None
    if prop.params is not None:
        kind = prop.params.get("VALUE")
        if kind is not None and kind.upper() not in ("DATE", "DATE-TIME"):
            raise _bad(prop, f"has unsupported VALUE={kind}")
        tzid_param = prop.params.get("TZID")
        if tzid_param:
            zone, tzid = resolver.resolve(tzid_param)
    out: list[_Moment] = []
    for raw in prop.value.split(","):
        text = raw.strip()
        size = len(text)
        try:
            if size == 8 and text.isdigit():
                # An all-day date is floating: it means that day wherever the reader is.
                day = datetime.fromisoformat(text).replace(tzinfo=resolver.default_zone)
                out.append(_Moment(day, True, resolver.default_tzid))
                continue
            if size not in (15, 16) or text[8] != "T" or not text[:8].isdigit() or not text[9:15].isdigit():
                raise ValueError(text)
            if text[13:15] == "60":  # a leap second is read as :59
                text = text[:13] + "59" + text[15:]
            moment = datetime.fromisoformat(text[:15])
        except ValueError:
            raise _bad(prop, f"has an unreadable date or date-time {text[:40]!r}") from None
        if size == 16:
            if text[15] not in "Zz":
                raise _bad(prop, f"has an unreadable date-time {text[:40]!r}")
            out.append(_Moment(moment.replace(tzinfo=UTC), False, None))
        elif zone is not None:
            out.append(_Moment(moment.replace(tzinfo=zone), False, tzid))
        else:
            out.append(_Moment(moment.replace(tzinfo=resolver.default_zone), False, resolver.default_tzid))
    if not out:
        raise _bad(prop, "has no value")
    return out


def _duration(prop: Prop) -> timedelta:
    from icalendar import vDuration

    try:
        value = vDuration.from_ical(prop.value.strip())  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        raise _bad(prop, "is not a valid duration") from None
    if not isinstance(value, timedelta):
        raise _bad(prop, "is not a valid duration")
    return value


def _rrule(prop: Prop) -> str:
    from icalendar import vRecur

    text = prop.value.strip()
    try:
        vRecur.from_ical(text)
    except (ValueError, TypeError, KeyError):
        raise _bad(prop, "is not a valid recurrence rule") from None
    return text[6:] if text.upper().startswith("RRULE:") else text


def _event(component: Component, resolver: ZoneResolver) -> EventData:
    start: _Moment | None = None
    end: _Moment | None = None
    duration: Prop | None = None
    fields: dict[str, object] = {}
    exdates: list[datetime] = []
    categories: list[str] = []
    for prop in component.props:
        name = prop.name
        if name == "DTSTART":
            start = _moments(prop, resolver)[0]
        elif name == "DTEND":
            end = _moments(prop, resolver)[0]
        elif name == "DURATION":
            duration = prop
        elif name == "UID":
            fields["uid"] = prop.value.strip()
        elif name == "SUMMARY":
            fields["summary"] = unescape_text(prop.value)
        elif name == "DESCRIPTION":
            fields["description"] = unescape_text(prop.value)
        elif name == "LOCATION":
            fields["location"] = unescape_text(prop.value)
        elif name == "STATUS":
            fields["status"] = _STATUS.get(prop.value.strip().upper(), "confirmed")
        elif name == "TRANSP":
            fields["transparent"] = prop.value.strip().upper() == "TRANSPARENT"
        elif name == "RRULE":
            fields["rrule"] = _rrule(prop)
        elif name == "EXDATE":
            exdates.extend(m.value for m in _moments(prop, resolver))
        elif name == "RECURRENCE-ID":
            fields["recurrence_id"] = _moments(prop, resolver)[0].value
        elif name == "CATEGORIES":
            categories.extend(c for c in split_text_list(prop.value) if c)
        elif name == X_ID:
            fields["clinicbot_id"] = unescape_text(prop.value).strip() or None
        elif name == X_CLIENT_NAME:
            fields["client_name"] = unescape_text(prop.value)
        elif name == X_CLIENT_EMAIL:
            fields["client_email"] = unescape_text(prop.value)
        elif name == X_SERVICE:
            fields["service"] = unescape_text(prop.value)
    if start is None:
        raise BadPayload(f"line {component.line}: VEVENT without DTSTART", line=component.line)
    if end is not None:
        if end.all_day != start.all_day:
            end_prop = component.first("DTEND")
            assert end_prop is not None
            raise _bad(end_prop, "and DTSTART mix a date with a date-time")
        stop = end.value
    elif duration is not None:
        stop = start.value + _duration(duration)
    else:
        stop = start.value + (timedelta(days=1) if start.all_day else timedelta(0))
    if stop < start.value:
        line = component.first("DTEND") or component.first("DURATION") or component.first("DTSTART")
        assert line is not None
        raise _bad(line, "makes the event end before it starts")
    if "uid" not in fields or not fields["uid"]:
        fields["uid"] = _synthetic_uid(component)
    fields.setdefault("summary", "")
    try:
        return EventData(
            start=start.value,
            end=stop,
            tzid=start.tzid,
            all_day=start.all_day,
            exdates=tuple(exdates),
            categories=tuple(categories),
            **fields,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise BadPayload(f"line {component.line}: {exc}", line=component.line) from None


def _synthetic_uid(component: Component) -> str:
    """A stable uid for a UID-less VEVENT (old feeds), from its start, end and summary."""
    digest = hashlib.sha256()
    for name in ("DTSTART", "DTEND", "DURATION", "SUMMARY", "RECURRENCE-ID"):
        prop = component.first(name)
        digest.update(f"{name}={prop.value if prop else ''};".encode())
    log.info("ical: VEVENT without UID; using a content hash")
    return f"nouid-{digest.hexdigest()[:32]}"
