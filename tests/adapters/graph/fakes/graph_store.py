"""The fake Graph's mailbox state: calendars, events with change keys, calendar views and delta rounds.

Times are kept in UTC. Input accepts Windows or IANA zone names, as Graph does; output is written
in the zone the client prefers (`Prefer: outlook.timezone`), UTC by default. Recurring series
(daily, weekly and absoluteMonthly patterns) are expanded into occurrences in calendar views, as
calendarView and calendarView/delta return instances, never series masters.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from adapters.graph.timezones import to_iana
from tests.adapters.graph.fakes.graph_login import User

__all__ = ["FakeCalendar", "GraphError", "GraphStore", "Mailbox", "StoredEvent", "format_time", "parse_time"]

WRITABLE = {
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "showAs",
    "categories",
    "location",
    "sensitivity",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "recurrence",
    "singleValueExtendedProperties",
    "transactionId",
    "importance",
    "attendees",
    "responseRequested",
    "allowNewTimeProposals",
}
SHOW_AS = {"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}


class GraphError(Exception):
    """An error answer: HTTP status, Graph error code and message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def parse_time(value: Any, what: str) -> tuple[datetime, str]:
    """(UTC datetime, zone name as given) from a dateTimeTimeZone body value."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise GraphError(400, "ErrorInvalidRequest", f"The {what} property is missing or invalid.")
    zone_name = str(value.get("timeZone") or "UTC")
    iana = to_iana(zone_name)
    if iana is None:
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone_name}'.",
        )
    text = value["dateTime"].rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise GraphError(400, "ErrorInvalidRequest", f"Cannot convert the literal '{value['dateTime']}'.") from None
    return naive.replace(tzinfo=ZoneInfo(iana)).astimezone(UTC), zone_name


def format_time(moment: datetime, zone_name: str) -> dict[str, str]:
    """A dateTimeTimeZone in the client's preferred zone, with Graph's 7 fractional digits."""
    iana = to_iana(zone_name) or "UTC"
    local = moment.astimezone(ZoneInfo(iana)).replace(tzinfo=None)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": zone_name}


def _change_key() -> str:
    return base64.b64encode(secrets.token_bytes(12)).decode()


@dataclass
class StoredEvent:
    id: str
    calendar_id: str
    fields: dict[str, Any]
    start: datetime
    end: datetime
    start_zone: str
    end_zone: str
    change_key: str = field(default_factory=_change_key)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    ical_uid: str = field(default_factory=lambda: "040000008200E00074C5B7101A82E008" + secrets.token_hex(28))
    #: Attachments as Graph returns them (fileAttachment with contentBytes, itemAttachment ...).
    attachments: list[dict[str, Any]] = field(default_factory=list)

    #: Occurrences changed on their own (Graph's exceptions): instance id -> start, end, fields, change key.
    exceptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Occurrences deleted on their own.
    cancelled: set[str] = field(default_factory=set)

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    def instance_key(self, iid: str) -> str:
        """The change key of one instance: an exception changes on its own as well as with its series."""
        exc = self.exceptions.get(iid)
        return f"{self.change_key}{exc['change_key']}" if exc else self.change_key

    @staticmethod
    def original_start(iid: str) -> datetime | None:
        """An occurrence's start in the series before it was changed (its id carries it)."""
        _, _, stamp = iid.rpartition("_")
        try:
            return datetime.strptime(stamp, "%Y%m%dT%H%M").replace(tzinfo=UTC)
        except ValueError:
            return None

    @property
    def all_day(self) -> bool:
        return bool(self.fields.get("isAllDay"))

    def occurrences(self, start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
        """(instance id, start, end) of the instances overlapping [start, end)."""
        recurrence = self.fields.get("recurrence")
        if not isinstance(recurrence, dict):
            return [(self.id, self.start, self.end)] if self.start < end and self.end > start else []
        out = []
        for s in _expand(recurrence, self.start, self.start_zone, end + timedelta(days=7)):
            iid = f"{self.id}_{s:%Y%m%dT%H%M}"
            exc = self.exceptions.get(iid)
            s_, e_ = (exc["start"], exc["end"]) if exc else (s, s + (self.end - self.start))
            if iid not in self.cancelled and s_ < end and e_ > start:
                out.append((iid, s_, e_))
        return out


def _expand(recurrence: dict[str, Any], first: datetime, zone_name: str, until: datetime) -> list[datetime]:
    pattern, rng = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    tz = ZoneInfo(to_iana(rng.get("recurrenceTimeZone") or zone_name) or "UTC")
    local_first = first.astimezone(tz)
    interval = max(1, int(pattern.get("interval") or 1))
    count = int(rng.get("numberOfOccurrences") or 0) if rng.get("type") == "numbered" else 0
    last_day = date.fromisoformat(rng["endDate"]) if rng.get("type") == "endDate" else None
    days = [d.lower() for d in pattern.get("daysOfWeek") or []]
    names = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    out: list[datetime] = []
    day = local_first.date()
    while len(out) < 2000:
        if last_day and day > last_day:
            break
        moment = datetime.combine(day, local_first.timetz().replace(tzinfo=None), tzinfo=tz).astimezone(UTC)
        if moment >= until:
            break
        delta_days = (day - local_first.date()).days
        kind = pattern.get("type")
        if kind == "daily":
            hit = delta_days % interval == 0
        elif kind == "weekly":
            hit = (delta_days // 7) % interval == 0 and names[day.weekday()] in (days or [names[local_first.weekday()]])
        elif kind == "absoluteMonthly":
            months = (day.year - local_first.year) * 12 + day.month - local_first.month
            hit = day.day == int(pattern.get("dayOfMonth") or local_first.day) and months % interval == 0
        else:
            hit = delta_days == 0  # other patterns: the fake keeps only the first instance
        if hit:
            out.append(moment)
            if count and len(out) >= count:
                break
        day += timedelta(days=1)
    return out


@dataclass
class FakeCalendar:
    id: str
    name: str
    owner: User
    is_default: bool = False
    can_edit: bool = True
    events: dict[str, StoredEvent] = field(default_factory=dict)


@dataclass
class Mailbox:
    user: User
    calendars: dict[str, FakeCalendar] = field(default_factory=dict)
    transaction_ids: dict[str, str] = field(default_factory=dict)

    @property
    def default_calendar(self) -> FakeCalendar:
        return next(c for c in self.calendars.values() if c.is_default)

    def find_event(self, event_id: str) -> StoredEvent | None:
        for cal in self.calendars.values():
            if event_id in cal.events:
                return cal.events[event_id]
        return None

    def find_occurrence(self, iid: str) -> tuple[StoredEvent, tuple[str, datetime, datetime]] | None:
        """The series and the instance an occurrence id names (None when it names no live occurrence)."""
        series_id, _, _ = iid.rpartition("_")
        event = self.find_event(series_id) if series_id else None
        original = StoredEvent.original_start(iid)
        if event is None or original is None or not isinstance(event.fields.get("recurrence"), dict):
            return None
        span = event.end - event.start
        lo = min(original, event.exceptions.get(iid, {}).get("start", original)) - span - timedelta(days=1)
        hi = max(original, event.exceptions.get(iid, {}).get("end", original)) + span + timedelta(days=1)
        found = next((row for row in event.occurrences(lo, hi) if row[0] == iid), None)
        return (event, found) if found is not None else None


class GraphStore:
    """All mailboxes of the fake tenant(s)."""

    def __init__(self) -> None:
        self.mailboxes: dict[str, Mailbox] = {}
        #: Lower-cased UPN -> object id, filled as names are resolved and checked on every use (a test
        #: may rename a user): Graph finds a user by name without walking the directory, and a walk per
        #: request made this fake's own CPU the limit of the 200-mailbox publish benchmark.
        self._by_upn: dict[str, str] = {}

    def add_mailbox(self, user: User) -> Mailbox:
        mbx = Mailbox(user=user)
        cal = FakeCalendar(id=_new_id(), name="Calendar", owner=user, is_default=True)
        mbx.calendars[cal.id] = cal
        self.mailboxes[user.oid] = mbx
        return mbx

    def add_calendar(self, mbx: Mailbox, name: str, *, can_edit: bool = True) -> FakeCalendar:
        cal = FakeCalendar(id=_new_id(), name=name, owner=mbx.user, can_edit=can_edit)
        mbx.calendars[cal.id] = cal
        return cal

    def resolve(self, ref: str) -> Mailbox | None:
        """A mailbox by object id or user principal name (case-insensitive)."""
        if ref in self.mailboxes:
            return self.mailboxes[ref]
        key = ref.lower()
        known = self.mailboxes.get(self._by_upn.get(key, ""))
        if known is not None and known.user.upn.lower() == key:
            return known
        for mbx in self.mailboxes.values():
            if mbx.user.upn.lower() == key:
                self._by_upn[key] = mbx.user.oid
                return mbx
        return None

    # --- writes ------------------------------------------------------------------------------------
    def create(self, mbx: Mailbox, cal: FakeCalendar, body: Any) -> tuple[StoredEvent, bool]:
        """Create an event; (event, created). A repeated transactionId returns the existing event."""
        fields = _validated(body, creating=True)
        if not cal.can_edit:
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        txid = fields.get("transactionId")
        if txid and txid in mbx.transaction_ids:
            existing = mbx.find_event(mbx.transaction_ids[txid])
            if existing is not None:
                return existing, False
        start, start_zone = parse_time(fields["start"], "start")
        end, end_zone = parse_time(fields["end"], "end")
        _check_span(fields, start, end)
        event = StoredEvent(
            id=_new_id(),
            calendar_id=cal.id,
            fields=fields,
            start=start,
            end=end,
            start_zone=start_zone,
            end_zone=end_zone,
        )
        cal.events[event.id] = event
        if txid:
            mbx.transaction_ids[txid] = event.id
        return event, True

    def update(self, event: StoredEvent, body: Any, if_match: str | None) -> StoredEvent:
        self._check_etag(event, if_match)
        fields = _validated(body, creating=False)
        fields.pop("transactionId", None)
        merged = {**event.fields, **fields}
        start, start_zone = parse_time(merged["start"], "start")
        end, end_zone = parse_time(merged["end"], "end")
        _check_span(merged, start, end)
        event.fields, event.start, event.end = merged, start, end
        event.start_zone, event.end_zone = start_zone, end_zone
        event.change_key, event.modified = _change_key(), datetime.now(UTC)
        return event

    def update_occurrence(self, event: StoredEvent, iid: str, body: Any, if_match: str | None) -> None:
        """PATCH of one occurrence: it becomes an exception of its series (the series is not changed)."""
        if if_match is not None and if_match.strip() not in ("*", f'W/"{event.instance_key(iid)}"',
                                                              f'"{event.instance_key(iid)}"'):
            raise GraphError(412, "ErrorIrresolvableConflict",
                             "The change key passed in the request does not match the current change key.")
        fields = {k: v for k, v in _validated(body, creating=False).items()
                  if k not in ("transactionId", "recurrence", "type", "seriesMasterId")}
        before = event.exceptions.get(iid)
        original = StoredEvent.original_start(iid)
        assert original is not None
        start = before["start"] if before else original
        end = before["end"] if before else original + (event.end - event.start)
        if "start" in fields:
            start, _ = parse_time(fields["start"], "start")
        if "end" in fields:
            end, _ = parse_time(fields["end"], "end")
        _check_span({**event.fields, **fields}, start, end)
        event.exceptions[iid] = {"start": start, "end": end, "change_key": _change_key(),
                                 "fields": {**(before or {}).get("fields", {}), **fields}}

    def delete_occurrence(self, event: StoredEvent, iid: str) -> None:
        event.cancelled.add(iid)
        event.exceptions.pop(iid, None)

    def delete(self, mbx: Mailbox, event: StoredEvent, if_match: str | None) -> None:
        self._check_etag(event, if_match)
        del mbx.calendars[event.calendar_id].events[event.id]

    @staticmethod
    def _check_etag(event: StoredEvent, if_match: str | None) -> None:
        if if_match is None or if_match.strip() == "*":
            return
        if if_match.strip() not in (event.etag, f'"{event.change_key}"'):
            raise GraphError(
                412,
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the "
                "request does not match the current change key for the item.",
            )

    # --- reads ---------------------------------------------------------------------------------------
    def instances(
        self, cal: FakeCalendar, start: datetime, end: datetime
    ) -> list[tuple[StoredEvent, str, datetime, datetime]]:
        """(event, instance id, start, end) for every instance overlapping the view, by start."""
        out = [(event, iid, s, e) for event in cal.events.values() for iid, s, e in event.occurrences(start, end)]
        return sorted(out, key=lambda row: (row[2], row[1]))

    def render(
        self,
        event: StoredEvent,
        zone: str,
        text_body: bool,
        instance: tuple[str, datetime, datetime] | None = None,
        expand_props: bool = False,
    ) -> dict[str, Any]:
        """The event resource as Graph returns it."""
        f = event.fields
        iid, start, end = instance or (event.id, event.start, event.end)
        recurring = isinstance(f.get("recurrence"), dict)
        kind = "singleInstance" if not recurring else ("seriesMaster" if instance is None else "occurrence")
        original = StoredEvent.original_start(iid) if kind == "occurrence" else None
        if kind == "occurrence" and iid in event.exceptions:
            kind, f = "exception", {**f, **event.exceptions[iid]["fields"]}
        body = f.get("body") if isinstance(f.get("body"), dict) else {"contentType": "text", "content": ""}
        if not text_body and str(body.get("contentType", "text")).lower() == "text":
            body = {"contentType": "html", "content": f"<html><body>{body.get('content', '')}</body></html>"}
        out: dict[str, Any] = {
            "@odata.etag": f'W/"{event.instance_key(iid)}"',
            "id": iid,
            "createdDateTime": event.created.isoformat().replace("+00:00", "Z"),
            "lastModifiedDateTime": event.modified.isoformat().replace("+00:00", "Z"),
            "changeKey": event.instance_key(iid),
            "categories": list(f.get("categories") or []),
            "transactionId": f.get("transactionId"),
            "originalStartTimeZone": event.start_zone,
            "originalEndTimeZone": event.end_zone,
            "iCalUId": event.ical_uid if original is None else f"{event.ical_uid}{original:%Y%m%d}",
            "subject": f.get("subject", ""),
            "bodyPreview": str(body.get("content", ""))[:255],
            "body": body,
            "importance": f.get("importance", "normal"),
            "sensitivity": f.get("sensitivity", "normal"),
            "isAllDay": event.all_day,
            "isCancelled": False,
            "isOrganizer": True,
            "showAs": f.get("showAs", "busy"),
            "type": kind,
            "seriesMasterId": event.id if kind in ("occurrence", "exception") else None,
            "recurrence": f.get("recurrence") if kind == "seriesMaster" else None,
            "start": format_time(start, "UTC" if event.all_day else zone),
            "end": format_time(end, "UTC" if event.all_day else zone),
            "location": f.get("location") or {"displayName": ""},
        }
        if original is not None:
            out["originalStart"] = original.isoformat().replace("+00:00", "Z")
        if event.all_day:
            # All-day events are floating: midnight of the dates, whatever zone was asked for.
            out["start"] = {
                "dateTime": _local_date(start, event.start_zone) + "T00:00:00.0000000",
                "timeZone": zone,
            }
            out["end"] = {
                "dateTime": _local_date(end, event.end_zone) + "T00:00:00.0000000",
                "timeZone": zone,
            }
        if expand_props and f.get("singleValueExtendedProperties"):
            out["singleValueExtendedProperties"] = f["singleValueExtendedProperties"]
        return out


def _local_date(moment: datetime, zone_name: str) -> str:
    return moment.astimezone(ZoneInfo(to_iana(zone_name) or "UTC")).date().isoformat()


def _new_id() -> str:
    # Immutable ids are long base64url strings; the fake's are shorter but of the same alphabet.
    return "AAMk" + base64.urlsafe_b64encode(uuid.uuid4().bytes + secrets.token_bytes(8)).decode().rstrip("=")


def _validated(body: Any, *, creating: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise GraphError(400, "RequestBodyRead", "Empty Payload. JSON content expected.")
    unknown = [k for k in body if k not in WRITABLE and not k.startswith("@odata")]
    if unknown:
        raise GraphError(
            400,
            "RequestBodyRead",
            f"The property '{unknown[0]}' does not exist on type 'microsoft.graph.event'.",
        )
    if creating and ("start" not in body or "end" not in body):
        raise GraphError(400, "ErrorInvalidRequest", "Your request can't be completed. Start and End are required.")
    if "showAs" in body and body["showAs"] not in SHOW_AS:
        raise GraphError(400, "RequestBodyRead", f"Requested value '{body['showAs']}' was not found.")
    cats = body.get("categories", [])
    if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
        raise GraphError(400, "RequestBodyRead", "categories must be a collection of strings.")
    return {k: v for k, v in body.items() if not k.startswith("@odata")}


def _check_span(fields: dict[str, Any], start: datetime, end: datetime) -> None:
    if end < start:
        raise GraphError(400, "ErrorInvalidRequest", "The end time must be after the start time.")
    if fields.get("isAllDay"):
        zone = ZoneInfo(to_iana(fields["start"].get("timeZone")) or "UTC")
        ls, le = (
            start.astimezone(zone),
            end.astimezone(ZoneInfo(to_iana(fields["end"].get("timeZone")) or "UTC")),
        )
        if ls.time() != time(0) or le.time() != time(0) or le.date() <= ls.date():
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                "All-day events must start and end at midnight and span at least one day.",
            )
