"""VEVENT -> EventData.

Values are decoded here directly (dates, date-times, text, durations), which keeps 10,000 plain
events fast; the icalendar library is called only where a value is complex: a custom VTIMEZONE
(zones.py), an RRULE (validated by icalendar's vRecur) and a DURATION.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from adapters.kit.ical.contentlines import (
    _LINE,
    _UNFOLD,
    Component,
    Prop,
    _drop_named_zones,
    _param_dict,
    located,
    parse_components,
    split_text_list,
    unescape_text,
)
from adapters.kit.ical.zones import ZoneResolver
from sync.contract import BadPayload
from sync.contract.items import EventData, EventStatus

__all__ = [
    "X_CLIENT_EMAIL", "X_CLIENT_NAME", "X_ID", "X_SERVICE", "ReadProblem", "events_from_calendar", "parse_events",
]  # fmt: skip

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


@dataclass(frozen=True, slots=True)
class ReadProblem:
    """Something in a calendar the reader skipped or repaired (no event content: uid, line, what).

    kind: "skipped" (the event was left out), "repaired" (read with one obvious fix, or a line of
    it left out), "rule" (its RRULE could not be read: only its DTSTART is shown).
    """

    kind: Literal["skipped", "repaired", "rule"]
    uid: str | None
    line: int
    what: str

    def text(self) -> str:
        return f"{self.kind} {self.uid or '(no UID)'} line {self.line}: {self.what}"


def parse_events(
    data: str | bytes, *, default_tz: str | None = None, problems: list[ReadProblem] | None = None
) -> list[EventData]:
    """Every VEVENT in an iCalendar stream (series masters and overrides), in document order.

    Floating times and all-day dates are read in `default_tz` (UTC when None). One event that
    cannot be read is left out, one with an obvious fix is repaired, and each is added to
    `problems` (with its line); the stream as a whole raises BadPayload, naming the line, only
    when it is not iCalendar at all.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    plain = _plain_event(text, default_tz)
    if plain is not None:
        return [plain]
    found: list[ReadProblem] = []
    events = _read(parse_components(text), default_tz, found)
    if any(p.line == 0 for p in found):
        # The fast pass keeps no line numbers: read again line by line so each problem names its line.
        found = []
        events = _read(located(data, tolerant=True), default_tz, found)
    if problems is not None:
        problems.extend(found)
    return events


#: The properties the plain-event path reads; any other property `_READ` names (RRULE, EXDATE,
#: RDATE, RECURRENCE-ID, DURATION, CATEGORIES) sends the resource to the full reader.
_PLAIN_TEXT = {
    "SUMMARY": "summary",
    "DESCRIPTION": "description",
    "LOCATION": "location",
    X_CLIENT_NAME: "client_name",
    X_CLIENT_EMAIL: "client_email",
    X_SERVICE: "service",
}
_PLAIN_READ = frozenset({"DTSTART", "DTEND", "UID", "STATUS", "TRANSP", "SEQUENCE", X_ID, *_PLAIN_TEXT})


def _plain_event(text: str, default_tz: str | None) -> EventData | None:
    """The one VEVENT of the commonest resource shape, read in one pass with no component tree:
    one VCALENDAR holding one VEVENT (VALARMs inside it and VTIMEZONEs named after IANA zones are
    passed over), DTSTART and DTEND both dates (all-day) or both date-times (UTC, with a TZID, or
    floating), and none of RRULE, EXDATE, RDATE, RECURRENCE-ID, DURATION or CATEGORIES; other
    properties may carry any well-formed parameters (ATTENDEE;CN="Lee, Dr":...). None for anything
    else, and for anything the full reader would repair, skip or note: that goes to
    `parse_components` and `events_from_calendar`, which give the same EventData for what this
    path accepts (tests/adapters/kit/ical/test_plain_path.py compares the two)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "\n " in text or "\n\t" in text:
        text = _UNFOLD.sub("", text)
    if "BEGIN:VTIMEZONE" in text:
        text = _drop_named_zones(text)
    depth = 0  # 1 inside the VCALENDAR, 2 inside the VEVENT, 3 inside a VALARM
    events = 0
    ended = False
    fields: dict[str, object] = {}
    times: dict[str, tuple[datetime, str | None, bool]] = {}
    resolver: ZoneResolver | None = None
    zone: tzinfo
    for name, raw_params, value, bad in _LINE.findall(text):
        if bad or not name or ended:
            return None
        upper = name.upper()
        params: dict[str, str] | None = None
        if raw_params:
            try:
                params = _param_dict(raw_params, 0)
            except BadPayload:
                return None  # broken parameters: the full reader leaves the line out and notes it
        if upper == "BEGIN":
            kind = value.strip().upper()
            if (depth, kind) not in ((0, "VCALENDAR"), (1, "VEVENT"), (2, "VALARM")):
                return None
            events += kind == "VEVENT"
            depth += 1
            continue
        if upper == "END":
            if depth == 0 or value.strip().upper() != ("VCALENDAR", "VEVENT", "VALARM")[depth - 1]:
                return None
            depth -= 1
            ended = depth == 0
            continue
        if depth != 2 or upper not in _READ:
            if depth == 0:
                return None  # content outside the VCALENDAR
            continue  # calendar and alarm properties, and what the reader passes over
        if upper not in _PLAIN_READ or upper in fields or upper in times:
            return None  # a series, a duration, categories, or a property given twice
        if upper == "DTSTART" or upper == "DTEND":
            size = len(value)
            if size == 16 and params is None and value[15] in "Zz":
                zone, zone_name, all_day = UTC, None, False
            elif size == 15 or size == 8:
                if resolver is None:
                    resolver = ZoneResolver(None, default_tz)
                all_day = size == 8
                if params is None or (all_day and len(params) == 1 and params.get("VALUE", "").upper() == "DATE"):
                    # a floating time, or an all-day date: that day wherever the reader is
                    zone, zone_name = resolver.default_zone, resolver.default_tzid
                elif not all_day and len(params) == 1 and params.get("TZID"):
                    zone, zone_name = resolver.resolve(params["TZID"])
                else:
                    return None
            else:
                return None
            if not _digits(value[:8]) or (
                size > 8 and (value[8] != "T" or not _digits(value[9:15]) or value[13:15] == "60")
            ):
                return None
            moment = datetime.fromisoformat(value[:15])
            if not 1 < moment.year < 9999:
                return None
            times[upper] = (moment.replace(tzinfo=zone), zone_name, all_day)
        elif upper == "UID":
            fields[upper] = value.strip()
        elif upper == "STATUS":
            fields[upper] = _STATUS.get(value.strip().upper(), "confirmed")
        elif upper == "TRANSP":
            fields[upper] = value.strip().upper() == "TRANSPARENT"
        elif upper == "SEQUENCE":
            if not _digits(value.strip()):
                return None
            fields[upper] = None  # one event: its SEQUENCE decides nothing
        elif upper == X_ID:
            fields[upper] = unescape_text(value).strip() or None
        else:
            fields[upper] = unescape_text(value)
    if not ended or events != 1 or "DTSTART" not in times or "DTEND" not in times or not fields.get("UID"):
        return None
    (start, tzid, all_day), (end, _, end_all_day) = times["DTSTART"], times["DTEND"]
    if end < start or all_day != end_all_day:
        return None
    try:
        return EventData(
            uid=fields["UID"],  # type: ignore[arg-type]
            summary=fields.get("SUMMARY", ""),  # type: ignore[arg-type]
            start=start,
            end=end,
            tzid=tzid,
            all_day=all_day,
            description=fields.get("DESCRIPTION", ""),  # type: ignore[arg-type]
            location=fields.get("LOCATION", ""),  # type: ignore[arg-type]
            status=fields.get("STATUS", "confirmed"),  # type: ignore[arg-type]
            transparent=fields.get("TRANSP", False),  # type: ignore[arg-type]
            client_name=fields.get(X_CLIENT_NAME),  # type: ignore[arg-type]
            client_email=fields.get(X_CLIENT_EMAIL),  # type: ignore[arg-type]
            service=fields.get(X_SERVICE),  # type: ignore[arg-type]
            clinicbot_id=fields.get(X_ID),  # type: ignore[arg-type]
        )
    except (ValueError, OverflowError):
        return None


def _read(calendars: list[Component], default_tz: str | None, problems: list[ReadProblem]) -> list[EventData]:
    events: list[EventData] = []
    for calendar in calendars:
        events.extend(events_from_calendar(calendar, default_tz=default_tz, problems=problems))
    return events


def events_from_calendar(
    calendar: Component, *, default_tz: str | None = None, problems: list[ReadProblem] | None = None
) -> list[EventData]:
    """The VEVENTs of one parsed VCALENDAR that can be read (see `parse_events`).

    A copy of an event (same UID and RECURRENCE-ID) with a higher SEQUENCE replaces the earlier
    one; a cancelled override of a series in the same calendar also becomes an EXDATE of it, so the
    occurrence is hidden even where the override itself is never imported.
    """
    found = problems if problems is not None else []
    for line, why in calendar.dropped or ():
        found.append(ReadProblem("repaired", None, line, f"left out: {why}"))
    resolver = ZoneResolver(calendar, default_tz)
    chosen: dict[tuple[str, datetime | None], tuple[int, EventData]] = {}
    for child in calendar.children:
        if child.name != "VEVENT":
            continue
        for line, why in child.dropped or ():
            found.append(ReadProblem("repaired", _uid_of(child), line, f"line left out: {why}"))
        try:
            event, sequence = _event_fields(child, resolver, found)
        except BadPayload as exc:
            line = exc.line or child.line
            found.append(ReadProblem("skipped", _uid_of(child), line, _reason(exc, line)))
            continue
        except OverflowError:
            found.append(ReadProblem("skipped", _uid_of(child), child.line, "a time is out of range"))
            continue
        key = (event.uid, event.recurrence_id)
        earlier = chosen.get(key)
        if earlier is None or sequence > earlier[0]:
            chosen[key] = (sequence, event)
    if problems is None:
        for problem in found:
            log.warning("ical: %s", problem.kind, extra={"uid": problem.uid, "line": problem.line})
    return _fold_cancelled(_as_master([event for _, event in chosen.values()]))


def _uid_of(component: Component) -> str | None:
    prop = component.first("UID")
    return prop.value.strip() if prop is not None else None


def _reason(exc: BadPayload, line: int) -> str:
    return str(exc).removeprefix(f"line {line}: ")[:200]


def _as_master(events: list[EventData]) -> list[EventData]:
    """Overrides whose RECURRENCE-ID is a date-time on an all-day series (Outlook writes them) name
    the day that date-time has on its own clock: 16 April 00:00 in Berlin is 16 April, not the
    15 April it is in UTC. They are keyed and written as that DATE, as the series' visits are."""
    all_day = {e.uid: e.start.tzinfo for e in events if e.rrule and e.recurrence_id is None and e.all_day}
    if not all_day:
        return events
    out = []
    for event in events:
        rid = event.recurrence_id
        if rid is not None and event.uid in all_day and event.recurrence_all_day is False:
            day = datetime.combine(rid.date(), time(), all_day[event.uid])
            event = event.with_changes(recurrence_id=day, recurrence_all_day=True)
        out.append(event)
    return out


def _fold_cancelled(events: list[EventData]) -> list[EventData]:
    excluded = {(e.uid, x.astimezone(UTC)) for e in events if e.rrule and e.recurrence_id is None for x in e.exdates}
    if excluded:  # an override of a visit its series' EXDATE leaves out changes nothing (as recurring-ical-events)
        events = [
            e for e in events if e.recurrence_id is None or (e.uid, e.recurrence_id.astimezone(UTC)) not in excluded
        ]
    cancelled: dict[str, list[datetime]] = {}
    for event in events:
        if event.recurrence_id is not None and event.status == "cancelled":
            cancelled.setdefault(event.uid, []).append(event.recurrence_id)
    if not cancelled:
        return events
    out: list[EventData] = []
    for event in events:
        gone = cancelled.get(event.uid) if event.rrule and event.recurrence_id is None else None
        if gone:
            known = {x.astimezone(UTC) for x in event.exdates}
            extra = tuple(g for g in gone if g.astimezone(UTC) not in known)
            if extra:
                event = event.with_changes(exdates=(*event.exdates, *extra))
        out.append(event)
    return out


class _Moment:
    __slots__ = ("all_day", "tzid", "value")

    def __init__(self, value: datetime, all_day: bool, tzid: str | None) -> None:
        self.value = value
        self.all_day = all_day
        self.tzid = tzid


def _bad(prop: Prop, what: str) -> BadPayload:
    return BadPayload(f"line {prop.line}: {prop.name} {what}", line=prop.line)


def _digits(text: str) -> bool:
    """Only 0-9: str.isdigit() also takes "²" and other scripts' digits, which RFC 5545 dates never hold."""
    return text.isascii() and text.isdigit()


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
    edge = False  # a year 1 or 9999: checked below, where converting it could overflow
    for raw in prop.value.split(","):
        text = raw.strip()
        size = len(text)
        if not size and (prop.name == "EXDATE" or prop.name == "RDATE"):
            continue  # an empty item (Google writes "EXDATE;VALUE=DATE:"): nothing to add or leave out
        try:
            if size == 8 and _digits(text):
                # An all-day date is floating: it means that day wherever the reader is.
                day = datetime.fromisoformat(text).replace(tzinfo=resolver.default_zone)
                out.append(_Moment(day, True, resolver.default_tzid))
                edge = edge or not 1 < day.year < 9999
                continue
            if size not in (15, 16) or text[8] != "T" or not _digits(text[:8]) or not _digits(text[9:15]):
                raise ValueError(text)
            if text[13:15] == "60":  # a leap second is read as :59
                text = text[:13] + "59" + text[15:]
            moment = datetime.fromisoformat(text[:15])
            edge = edge or not 1 < moment.year < 9999
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
    if edge:  # within a day of the ends of the datetime range
        for found in out:
            _in_range(prop, found.value)
    return out


#: Times a calendar may hold: within a day of the ends of Python's datetime range, converting a time
#: to UTC or adding a day to it would raise OverflowError deep in the sync.
_EARLIEST = datetime(1, 1, 3, tzinfo=UTC)
_LATEST = datetime(9999, 12, 29, tzinfo=UTC)


def _in_range(prop: Prop, value: datetime) -> None:
    try:
        ok = _EARLIEST <= value.astimezone(UTC) <= _LATEST
    except OverflowError:
        ok = False
    if not ok:
        raise _bad(prop, "is out of the supported range (years 1 to 9999)")


def _duration(prop: Prop) -> timedelta:
    from icalendar import vDuration

    text = prop.value.strip()
    if not text.isascii():  # icalendar's \d and int() would read other scripts' digits ("P٣D")
        raise _bad(prop, "is not a valid duration")
    try:
        value = vDuration.from_ical(text)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, OverflowError):
        raise _bad(prop, "is not a valid duration") from None
    if not isinstance(value, timedelta):
        raise _bad(prop, "is not a valid duration")
    return value


_SPACES = re.compile(r"\s+")


def _rrule(prop: Prop, start: datetime, problems: list[ReadProblem], component: Component) -> str | None:
    """The RRULE text without its "RRULE:" prefix, or None when it cannot be read (noted).

    Spaces inside it are removed (Exchange writes "BYDAY=MO, TU"). A rule is read by icalendar and
    by dateutil, which expands it; INTERVAL below 1 is refused (dateutil would loop for ever).
    """
    from dateutil.rrule import rrulestr
    from icalendar import vRecur

    raw = prop.value.strip()
    text = _SPACES.sub("", raw)
    if text != raw:
        problems.append(ReadProblem("repaired", _uid_of(component), prop.line, "RRULE had spaces in it"))
    text = text[6:] if text.upper().startswith("RRULE:") else text
    why: str | None = None
    try:
        if not text.isascii():  # int() in icalendar and dateutil reads other scripts' digits ("COUNT=٣")
            raise ValueError(text)
        vRecur.from_ical(text)
        parts = dict(p.partition("=")[::2] for p in text.upper().split(";"))
        if int(parts.get("INTERVAL") or 1) < 1:
            why = "INTERVAL below 1"
        else:
            rrulestr(text, dtstart=start.replace(tzinfo=None), ignoretz=True)
    except (ValueError, TypeError, KeyError, OverflowError):
        why = "cannot be read"
    if why is not None:
        what = f"RRULE {why}; only the first visit is shown"
        problems.append(ReadProblem("rule", _uid_of(component), prop.line, what))
        return None
    return text


def _date_exdates(days: list[date], start: _Moment, rules: list[str], rdates: list[datetime]) -> list[datetime]:
    """The occurrences of a timed series on the days of its DATE EXDATEs (RFC 5545 leaves the
    meaning open; recurring-ical-events, like most readers, leaves out every visit on that day)."""
    from dateutil.rrule import rrulestr

    zone = start.value.tzinfo
    wanted = set(days)
    last = datetime.combine(max(days) + timedelta(days=1), time(), zone)
    found = [m for m in (start.value, *rdates) if m.astimezone(zone).date() in wanted]
    for text in rules:
        try:
            rule: Any = rrulestr(text, dtstart=start.value.replace(tzinfo=None), ignoretz=True)
            rule = rule.replace(until=last.replace(tzinfo=None))
        except (ValueError, TypeError):
            continue
        for steps, moment in enumerate(rule):
            if steps > 100_000:
                break
            if moment.date() in wanted:
                found.append(moment.replace(tzinfo=zone))
    return found


#: The properties an event is read from; the others are passed over.
_READ = frozenset(
    {
        "DTSTART",
        "DTEND",
        "DURATION",
        "UID",
        "SUMMARY",
        "DESCRIPTION",
        "LOCATION",
        "STATUS",
        "TRANSP",
        "SEQUENCE",
        "RRULE",
        "EXDATE",
        "RDATE",
        "RECURRENCE-ID",
        "CATEGORIES",
        X_ID,
        X_CLIENT_NAME,
        X_CLIENT_EMAIL,
        X_SERVICE,
    }
)


def _event_fields(component: Component, resolver: ZoneResolver, problems: list[ReadProblem]) -> tuple[EventData, int]:
    """One VEVENT and its SEQUENCE; BadPayload naming the line when it cannot be read (the caller
    also takes an OverflowError as unreadable)."""
    start: _Moment | None = None
    end: _Moment | None = None
    duration: Prop | None = None
    fields: dict[str, object] = {}
    exdates: list[datetime] = []
    exdays: list[datetime] = []  # DATE values, at midnight in the calendar's zone
    rdates: list[datetime] = []
    rules: list[Prop] = []
    categories: list[str] = []
    sequence = 0
    for prop in component.props:
        name = prop.name
        if name not in _READ:
            continue  # DTSTAMP, ORGANIZER, ATTENDEE ...: one look-up, not the whole chain below
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
        elif name == "SEQUENCE":
            try:
                if not _digits(prop.value.strip()):  # int() also takes "٣", "1_0" and 5,000 digits
                    raise ValueError(prop.value)
                sequence = int(prop.value.strip()[:9])
            except ValueError:
                what = "SEQUENCE is not a number; read as 0"
                problems.append(ReadProblem("repaired", _uid_of(component), prop.line, what))
        elif name == "RRULE":
            rules.append(prop)
        elif name == "EXDATE":
            if not prop.value.strip():
                problems.append(ReadProblem("repaired", _uid_of(component), prop.line, "empty EXDATE left out"))
                continue
            for m in _moments(prop, resolver):
                (exdays if m.all_day else exdates).append(m.value)
        elif name == "RDATE":
            if prop.params is not None and (prop.params.get("VALUE") or "").upper() == "PERIOD":
                rdates.extend(_period_starts(prop, resolver))
            elif prop.value.strip():
                rdates.extend(m.value for m in _moments(prop, resolver))
        elif name == "RECURRENCE-ID":
            rid = _moments(prop, resolver)[0]
            fields["recurrence_id"] = rid.value
            fields["recurrence_all_day"] = rid.all_day
            kind = prop.param("RANGE")
            if kind and kind.strip().upper() == "THISANDFUTURE":
                fields["recurrence_range"] = "THISANDFUTURE"
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
            what = "DTEND and DTSTART mix a date with a date-time; read as DTSTART's kind"
            problems.append(ReadProblem("repaired", _uid_of(component), end_prop.line, what))
            end = _like(end, start)
        stop = end.value
    elif duration is not None:
        stop = start.value + _duration(duration)
    else:
        stop = start.value + (timedelta(days=1) if start.all_day else timedelta(0))
    if stop < start.value:
        line = component.first("DTEND") or component.first("DURATION") or component.first("DTSTART")
        assert line is not None
        what = "ended before it started; start and end swapped"
        problems.append(ReadProblem("repaired", _uid_of(component), line.line, what))
        if start.all_day:
            start, stop = _Moment(stop, True, start.tzid), start.value
        else:
            start, stop = _Moment(stop, False, start.tzid), start.value
    if not (1 < start.value.year < 9999 and 1 < stop.year < 9999):  # near the ends of the datetime range
        for value in (start.value, stop):
            try:
                value.astimezone(UTC) + timedelta(days=1)
            except OverflowError:
                raise BadPayload(f"line {component.line}: a time is out of range", line=component.line) from None
    texts: list[str] = []
    for prop in rules:
        text = _rrule(prop, start.value, problems, component)
        if text:
            texts.append(text)
    if texts:
        fields["rrule"] = "\n".join(dict.fromkeys(texts))
    if exdays and not start.all_day:
        exdates.extend(_date_exdates([d.date() for d in exdays], start, texts, rdates))
    else:
        exdates.extend(exdays)
    if "uid" not in fields or not fields["uid"]:
        fields["uid"] = _synthetic_uid(component)
    fields.setdefault("summary", "")
    try:
        return EventData(
            start=start.value,
            end=stop,
            tzid=start.tzid,
            all_day=start.all_day,
            exdates=tuple(dict.fromkeys(exdates)) if exdates else (),
            rdates=tuple(dict.fromkeys(rdates)) if rdates else (),
            categories=tuple(categories),
            **fields,  # type: ignore[arg-type]
        ), sequence
    except ValueError as exc:
        raise BadPayload(f"line {component.line}: {exc}", line=component.line) from None


def _like(end: _Moment, start: _Moment) -> _Moment:
    """DTEND read as a value of DTSTART's kind: the day it falls on (an all-day event lasts at least
    that day), or the start of that day in DTSTART's zone."""
    if start.all_day:
        past_midnight = end.value.timetz().replace(tzinfo=None) != time()
        day = end.value.date() + (timedelta(days=1) if past_midnight else timedelta())
        value = datetime.combine(day, time(), start.value.tzinfo)
        return _Moment(max(value, start.value + timedelta(days=1)), True, start.tzid)
    value = datetime.combine(end.value.date(), time(), start.value.tzinfo)
    return _Moment(max(value, start.value), False, start.tzid)


def _period_starts(prop: Prop, resolver: ZoneResolver) -> list[datetime]:
    """The starts of an RDATE;VALUE=PERIOD list (start/end or start/duration)."""
    starts = ",".join(item.split("/", 1)[0] for item in prop.value.split(","))
    params = {k: v for k, v in (prop.params or {}).items() if k != "VALUE"}
    return [m.value for m in _moments(Prop(prop.name, params or None, starts, prop.line), resolver)]


def _synthetic_uid(component: Component) -> str:
    """A stable uid for a UID-less VEVENT (old feeds), from its start, end and summary."""
    digest = hashlib.sha256()
    for name in ("DTSTART", "DTEND", "DURATION", "SUMMARY", "RECURRENCE-ID"):
        prop = component.first(name)
        digest.update(f"{name}={prop.value if prop else ''};".encode())
    log.info("ical: VEVENT without UID; using a content hash")
    return f"nouid-{digest.hexdigest()[:32]}"
