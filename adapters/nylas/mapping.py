"""Nylas v3 events to EventData and back.

- `when` is one of four shapes, told apart by its `object`: `timespan` (unix seconds and IANA
  zones), `time` (a moment), `date` (one whole day) and `datespan` (whole days; `end_date` is the
  last day, inclusive). Writes send the shape's keys without `object`, as the official SDK does.
- An occurrence of a recurring event has `master_event_id`: it keeps its own id (the remote id),
  its series' iCalendar uid (or the master id) as its uid, and its original start as the
  recurrence id, so the core knows which visit of which series it is.
- clinicbot's copies carry their identity in `metadata`: `key1` holds the copy's key (the only
  metadata Nylas indexes are key1..key5, and `metadata_pair=key1:<key>` finds it), plus the uid,
  the appointment id and the categories, which Nylas events have no field for.
- Nylas has no etag: the etag is a hash of the event as Nylas returned it, so any change to it
  (by anyone) changes the etag.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sync.contract import BadPayload
from sync.contract.items import EventData, EventStatus, RemoteItem

__all__ = ["KEY_FIELD", "content_etag", "copy_key", "from_nylas", "to_nylas"]

PROVIDER = "nylas"
KEY_FIELD = "key1"
UID_FIELD = "clinicbot_uid"
ID_FIELD = "clinicbot_id"
CATEGORIES_FIELD = "clinicbot_categories"
#: Nylas caps a metadata value; longer keys are hashed (stable, so a retry finds the same value).
MAX_KEY = 200
STATUSES: tuple[EventStatus, ...] = ("confirmed", "tentative", "cancelled")


def copy_key(idempotency_key: str) -> str:
    """The value stored in `key1` for a copy made under `idempotency_key`."""
    if len(idempotency_key) <= MAX_KEY and ":" not in idempotency_key:
        return idempotency_key
    return "sha256-" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def content_etag(raw: dict[str, Any]) -> str:
    """A stable hash of the event as Nylas returned it (Nylas gives events no version)."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:32]


def _zone(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _moment(value: Any, zone: ZoneInfo | None, what: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadPayload(f"nylas: event {what} is not unix seconds", provider=PROVIDER)
    return datetime.fromtimestamp(value, zone or UTC)


def _day(value: Any, what: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise BadPayload(f"nylas: event {what} is not a date", provider=PROVIDER) from None


def _when(when: Any) -> tuple[datetime, datetime, str | None, bool]:
    if not isinstance(when, dict):
        raise BadPayload("nylas: event without when", provider=PROVIDER)
    kind = when.get("object")
    if kind == "timespan" or (kind is None and "start_time" in when):
        start_zone = _zone(when.get("start_timezone"))
        end_zone = _zone(when.get("end_timezone")) or start_zone
        start = _moment(when.get("start_time"), start_zone, "start_time")
        end = _moment(when.get("end_time"), end_zone, "end_time")
        return start, end, getattr(start_zone, "key", None), False
    if kind == "time" or (kind is None and "time" in when):
        zone = _zone(when.get("timezone"))
        moment = _moment(when.get("time"), zone, "time")
        return moment, moment, getattr(zone, "key", None), False
    if kind == "date" or (kind is None and "date" in when):
        day = _day(when.get("date"), "date")
        return datetime.combine(day, time(0), UTC), datetime.combine(day + timedelta(days=1), time(0), UTC), None, True
    if kind == "datespan" or (kind is None and "start_date" in when):
        first, last = _day(when.get("start_date"), "start_date"), _day(when.get("end_date"), "end_date")
        return (datetime.combine(first, time(0), UTC), datetime.combine(last + timedelta(days=1), time(0), UTC),
                None, True)
    raise BadPayload(f"nylas: event when of unknown kind {str(kind)[:20]!r}", provider=PROVIDER)


def _recurrence(lines: Any, zone: ZoneInfo | None) -> tuple[str | None, tuple[datetime, ...]]:
    rrule, exdates = None, []
    for line in lines if isinstance(lines, list) else []:
        text = str(line)
        if text.upper().startswith("RRULE:"):
            rrule = text[6:]
        elif text.upper().startswith("EXDATE"):
            params, _, values = text.partition(":")
            tz = zone
            for param in params.split(";")[1:]:
                if param.upper().startswith("TZID="):
                    tz = _zone(param[5:]) or zone
            for value in values.split(","):
                value = value.strip()
                try:
                    if value.endswith("Z"):
                        exdates.append(datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
                    elif "T" in value:
                        exdates.append(datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=tz or UTC))
                    elif value:
                        exdates.append(datetime.strptime(value, "%Y%m%d").replace(tzinfo=tz or UTC))
                except ValueError:
                    continue  # an EXDATE we cannot read is left out; the occurrences listing is the truth
    return rrule, tuple(exdates)


def from_nylas(raw: dict[str, Any]) -> RemoteItem:
    """A Nylas event as the core sees it; BadPayload names what is missing (never event content)."""
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise BadPayload("nylas: event without an id", provider=PROVIDER)
    start, end, tzid, all_day = _when(raw.get("when"))
    stored = raw.get("metadata")
    meta: dict[str, Any] = stored if isinstance(stored, dict) else {}
    master = raw.get("master_event_id") if isinstance(raw.get("master_event_id"), str) else None
    uid = meta.get(UID_FIELD) or raw.get("ical_uid") or master or event_id
    recurrence_id = None
    if master:
        original = raw.get("original_start_time")
        recurrence_id = _moment(original, start.tzinfo if isinstance(start.tzinfo, ZoneInfo) else None,
                                "original_start_time") if original is not None else start
    status = raw.get("status") if raw.get("status") in STATUSES else "confirmed"
    rrule, exdates = _recurrence(raw.get("recurrence"), _zone(tzid)) if not master else (None, ())
    categories = tuple(c for c in str(meta.get(CATEGORIES_FIELD) or "").split("\n") if c)
    try:
        data = EventData(
            uid=str(uid),
            summary=str(raw.get("title") or ""),
            start=start,
            end=end,
            tzid=tzid,
            all_day=all_day,
            description=str(raw.get("description") or ""),
            location=str(raw.get("location") or ""),
            status=status,  # type: ignore[arg-type]
            transparent=raw.get("busy") is False,
            rrule=rrule,
            exdates=exdates,
            recurrence_id=recurrence_id,
            recurrence_all_day=all_day if recurrence_id is not None else None,
            categories=categories,
            clinicbot_id=str(meta[ID_FIELD]) if meta.get(ID_FIELD) else None,
        )
    except ValueError as exc:
        raise BadPayload(f"nylas: event {event_id[:12]}: {exc}", provider=PROVIDER) from None
    return RemoteItem(remote_id=event_id, etag=content_etag(raw), event=data)


def _write_when(event: EventData) -> dict[str, Any]:
    if event.all_day:
        first = event.start.date()
        last = max(first, (event.end - timedelta(days=1)).date())
        if first == last:
            return {"date": first.isoformat()}
        return {"start_date": first.isoformat(), "end_date": last.isoformat()}
    zone = event.tzid or "UTC"
    if event.start == event.end:
        return {"time": int(event.start.timestamp()), "timezone": zone}
    return {"start_time": int(event.start.timestamp()), "end_time": int(event.end.timestamp()),
            "start_timezone": zone, "end_timezone": zone}


def to_nylas(event: EventData, key: str | None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of a create or update (PUT replaces each nested object sent: when and metadata are sent whole)."""
    meta = {k: v for k, v in (metadata or {}).items() if k not in (UID_FIELD, ID_FIELD, CATEGORIES_FIELD)}
    if key is not None:
        meta[KEY_FIELD] = key
    meta[UID_FIELD] = event.uid
    if event.clinicbot_id:
        meta[ID_FIELD] = event.clinicbot_id
    if event.categories:
        meta[CATEGORIES_FIELD] = "\n".join(event.categories)
    return {
        "title": event.summary,
        "description": event.description,
        "location": event.location,
        "busy": not event.transparent,
        "status": event.status,
        "when": _write_when(event),
        "metadata": meta,
    }
