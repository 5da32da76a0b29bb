"""Google Calendar event JSON <-> sync.contract.items.EventData.

- Timed events: `dateTime` (RFC 3339 with offset) plus `timeZone`, kept as EventData.tzid.
- All-day events: `date` (end exclusive), read as UTC midnights with tzid None (floating).
- Series: `recurrence` lines, "RRULE:..." and "EXDATE...". Cancelled occurrences that Google keeps as
  cancelled exceptions are folded into the series' exdates by the provider.
- Exceptions: `recurringEventId` + `originalStartTime` -> EventData.recurrence_id.
- clinicbot's copies carry extendedProperties.private {"clinicbotId", "clinicbotUid"}; categories,
  which Google events lack, travel as "clinicbotCategories" (a JSON list).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sync.contract import BadPayload
from sync.contract.items import EventData, EventStatus, RemoteItem

__all__ = [
    "PRIVATE_ID",
    "PRIVATE_UID",
    "event_id_for",
    "instance_id",
    "original_start",
    "to_event_data",
    "to_google",
    "to_remote_item",
]

PROVIDER = "google"
PRIVATE_ID = "clinicbotId"
PRIVATE_UID = "clinicbotUid"
PRIVATE_CATEGORIES = "clinicbotCategories"
#: Google's limit on an extended property value.
MAX_PROPERTY_VALUE = 1024
STATUSES: dict[str, EventStatus] = {
    "confirmed": "confirmed",
    "tentative": "tentative",
    "cancelled": "cancelled",
}


def event_id_for(idempotency_key: str) -> str:
    """The event id clinicbot chooses for a create: base32hex (a-v, 0-9) of SHA-256 of the key.

    Deterministic, so a retried insert reuses the id and Google answers 409 instead of making a
    second copy; 52 characters, inside Google's 5-1024 limit whatever the key's length.
    """
    digest = hashlib.sha256(idempotency_key.encode()).digest()
    return base64.b32hexencode(digest).decode().rstrip("=").lower()


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadPayload(f"google: unknown time zone {name!r}", provider=PROVIDER) from None


def _when(value: Any, what: str) -> tuple[datetime, bool, str | None]:
    """(aware datetime, all_day, tzid) of a Google EventDateTime."""
    if not isinstance(value, dict):
        raise BadPayload(f"google: event without {what}", provider=PROVIDER)
    try:
        if value.get("date"):
            day = date.fromisoformat(value["date"])
            return datetime(day.year, day.month, day.day, tzinfo=UTC), True, None
        raw = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        raise BadPayload(f"google: unreadable {what}", provider=PROVIDER) from None
    zone_name = value.get("timeZone")
    zone = _zone(zone_name)
    if raw.tzinfo is None:
        if zone is None:
            raise BadPayload(f"google: {what} has neither offset nor time zone", provider=PROVIDER)
        return raw.replace(tzinfo=zone), False, zone_name
    return (raw.astimezone(zone) if zone else raw), False, zone_name


def original_start(resource: dict[str, Any]) -> datetime | None:
    """The start an exception replaces (its RECURRENCE-ID), if the event is an exception."""
    if not resource.get("recurringEventId") or "originalStartTime" not in resource:
        return None
    return _when(resource["originalStartTime"], "originalStartTime")[0]


def _parse_exdates(lines: Iterable[str], default_zone: ZoneInfo | None) -> list[datetime]:
    found: list[datetime] = []
    for line in lines:
        head, _, values = line.partition(":")
        params = dict(p.split("=", 1) for p in head.split(";")[1:] if "=" in p)
        zone = _zone(params["TZID"]) if "TZID" in params else default_zone
        for raw in filter(None, (v.strip() for v in values.split(","))):
            try:
                if len(raw) == 8:
                    found.append(datetime.strptime(raw, "%Y%m%d").replace(tzinfo=UTC))
                elif raw.endswith("Z"):
                    found.append(datetime.strptime(raw, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
                else:
                    found.append(datetime.strptime(raw, "%Y%m%dT%H%M%S").replace(tzinfo=zone or UTC))
            except ValueError:
                raise BadPayload(f"google: unreadable EXDATE {raw!r}", provider=PROVIDER) from None
    return found


def to_event_data(resource: dict[str, Any], *, extra_exdates: Iterable[datetime] = ()) -> EventData:
    """Map a (non-deleted) Google event onto EventData; BadPayload when it cannot be read."""
    start, all_day, tzid = _when(resource.get("start"), "start")
    end, _, _ = _when(resource.get("end"), "end")
    lines = [str(x) for x in resource.get("recurrence") or []]
    rules = [ln.split(":", 1)[1] for ln in lines if ln.upper().startswith("RRULE:")]
    rrule = "\n".join(rules) if rules else None  # every rule of the series, one per line
    exdates: tuple[datetime, ...] = ()
    rdates: tuple[datetime, ...] = ()
    if rrule is not None:
        exdate_lines = [ln for ln in lines if ln.upper().startswith("EXDATE")]
        merged = {d.astimezone(UTC): d for d in [*_parse_exdates(exdate_lines, _zone(tzid)), *extra_exdates]}
        exdates = tuple(merged[k] for k in sorted(merged))
        rdates = tuple(_parse_exdates([ln for ln in lines if ln.upper().startswith("RDATE")], _zone(tzid)))
    private = (resource.get("extendedProperties") or {}).get("private") or {}
    status = STATUSES.get(str(resource.get("status", "confirmed")))
    if status is None:
        raise BadPayload(f"google: unknown event status {resource.get('status')!r}", provider=PROVIDER)
    categories = _categories(private.get(PRIVATE_CATEGORIES))
    uid = private.get(PRIVATE_UID) or resource.get("iCalUID") or f"{resource.get('id')}@google.com"
    try:
        return EventData(
            uid=str(uid),
            summary=str(resource.get("summary") or ""),
            start=start,
            end=end,
            tzid=tzid,
            all_day=all_day,
            description=str(resource.get("description") or ""),
            location=str(resource.get("location") or ""),
            status=status,
            transparent=resource.get("transparency") == "transparent",
            rrule=rrule,
            exdates=exdates,
            rdates=rdates,
            recurrence_id=original_start(resource),
            categories=categories,
            clinicbot_id=private.get(PRIVATE_ID),
        )
    except ValueError as exc:
        raise BadPayload(f"google: {exc}", provider=PROVIDER) from None


def _categories(raw: Any) -> tuple[str, ...]:
    if not raw:
        return ()
    try:
        values = json.loads(raw)
    except (TypeError, ValueError):
        raise BadPayload("google: unreadable clinicbot categories", provider=PROVIDER) from None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BadPayload("google: unreadable clinicbot categories", provider=PROVIDER)
    return tuple(values)


def to_remote_item(resource: dict[str, Any], *, extra_exdates: Iterable[datetime] = ()) -> RemoteItem:
    """A RemoteItem for a Google event resource."""
    event = to_event_data(resource, extra_exdates=extra_exdates)
    return RemoteItem(remote_id=str(resource["id"]), etag=resource.get("etag"), event=event)


def _google_when(moment: datetime, event: EventData, *, for_patch: bool) -> dict[str, Any]:
    if event.all_day:
        local = moment.astimezone(ZoneInfo(event.tzid)) if event.tzid else moment.astimezone(UTC)
        value: dict[str, Any] = {"date": local.date().isoformat()}
        return {**value, "dateTime": None, "timeZone": None} if for_patch else value
    zone_name = event.tzid or ("UTC" if event.rrule else None)
    local = moment.astimezone(ZoneInfo(zone_name)) if zone_name else moment
    value = {"dateTime": local.isoformat()}
    if zone_name:
        value["timeZone"] = zone_name
    elif for_patch:
        value["timeZone"] = None
    return {**value, "date": None} if for_patch else value


def _exdate_line(moment: datetime, event: EventData, name: str = "EXDATE") -> str:
    if event.all_day:
        return f"{name};VALUE=DATE:{_local_date(moment, event.tzid)}"
    if event.tzid:
        local = moment.astimezone(ZoneInfo(event.tzid))
        return f"{name};TZID={event.tzid}:{local.strftime('%Y%m%dT%H%M%S')}"
    return f"{name}:{moment.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def to_google(event: EventData, *, for_patch: bool = False, exception: bool = False) -> dict[str, Any]:
    """The Google event body for `event` (no id); `for_patch` clears fields it does not set."""
    body: dict[str, Any] = {
        "summary": event.summary,
        "description": event.description,
        "location": event.location,
        "start": _google_when(event.start, event, for_patch=for_patch),
        "end": _google_when(event.end, event, for_patch=for_patch),
        "status": event.status,
        "transparency": "transparent" if event.transparent else "opaque",
    }
    if not exception:
        if event.rrule:
            body["recurrence"] = [
                *(f"RRULE:{rule}" for rule in event.rrule.split("\n") if rule),
                *(_exdate_line(d, event) for d in event.exdates),
                *(_exdate_line(d, event, "RDATE") for d in event.rdates),
            ]
        elif for_patch:
            body["recurrence"] = []
    private: dict[str, str | None] = {}
    if len(event.uid) <= MAX_PROPERTY_VALUE:
        private[PRIVATE_UID] = event.uid
    if event.clinicbot_id:
        private[PRIVATE_ID] = event.clinicbot_id
    categories = json.dumps(list(event.categories), ensure_ascii=False)
    if event.categories and len(categories) <= MAX_PROPERTY_VALUE:
        private[PRIVATE_CATEGORIES] = categories
    elif for_patch:
        private[PRIVATE_CATEGORIES] = None
    if private:
        body["extendedProperties"] = {"private": private}
    return body


def _local_date(moment: datetime, tzid: str | None) -> str:
    return moment.astimezone(ZoneInfo(tzid) if tzid else UTC).strftime("%Y%m%d")


def instance_id(master_id: str, occurrence: datetime, all_day: bool, tzid: str | None = None) -> str:
    """Google's id for one occurrence of a series: "<master>_<UTC stamp>" (all-day: "_<date>")."""
    if all_day:
        return f"{master_id}_{_local_date(occurrence, tzid)}"
    return f"{master_id}_{occurrence.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
