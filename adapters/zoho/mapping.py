"""Zoho Calendar events <-> EventData.

Zoho keeps times as `yyyyMMdd'T'HHmmss'Z'` (GMT) with the event's time zone beside them, and all-day
events as `yyyyMMdd` dates (the end taken as exclusive [I]). It has no event status, categories or
private properties: a cancelled event is written as free time (so it never blocks a slot), a
tentative one as busy, and clinicbot's appointment id is not stored (links keep the remote ids).
`transparency` (0 busy, 1 free) is taken from Zoho's event model [I].
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.zoho.client import PROVIDER
from sync.contract import BadPayload
from sync.contract.items import EventData, RemoteItem

__all__ = ["STAMP", "event_data", "parse_stamp", "remote_item", "stamp", "zoho_uid"]

STAMP = "%Y%m%dT%H%M%SZ"


def stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime(STAMP)


def parse_stamp(value: Any) -> datetime:
    try:
        return datetime.strptime(str(value), STAMP).replace(tzinfo=UTC)
    except ValueError:
        raise BadPayload(f"zoho: bad time {str(value)[:40]!r}", provider=PROVIDER) from None


def _zone(name: Any) -> ZoneInfo | None:
    try:
        return ZoneInfo(str(name)) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zoho_uid(idempotency_key: str) -> str:
    """The event uid clinicbot asks Zoho to keep for a create, from its idempotency key."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32] + "@clinicbot"


def event_data(event: EventData, *, uid: str | None = None, etag: str | None = None) -> dict[str, Any]:
    """The `eventdata` JSON Zoho takes for a create or an update."""
    if event.all_day:
        zone = _zone(event.tzid) or UTC
        when = {"start": event.start.astimezone(zone).strftime("%Y%m%d"),
                "end": event.end.astimezone(zone).strftime("%Y%m%d"), "timezone": event.tzid or "UTC"}
    else:
        when = {"start": stamp(event.start), "end": stamp(event.end), "timezone": event.tzid or "UTC"}
    data: dict[str, Any] = {
        "title": event.summary[:255], "description": event.description[:10000], "location": event.location[:255],
        "isallday": event.all_day, "dateandtime": when,
        "transparency": 1 if event.transparent or event.status == "cancelled" else 0,
    }
    if uid is not None:
        data["uid"] = uid
    if etag is not None:
        data["etag"] = int(etag) if etag.isascii() and etag.isdigit() and len(etag) <= 18 else etag
    return data


def remote_item(raw: Any) -> RemoteItem:
    """One event of Zoho's answer as a RemoteItem (remote id = its uid, etag = Zoho's etag)."""
    if not isinstance(raw, dict) or not raw.get("uid"):
        raise BadPayload("zoho: an event without a uid", provider=PROVIDER)
    found = raw.get("dateandtime")
    when: dict[str, Any] = found if isinstance(found, dict) else {}
    zone = _zone(when.get("timezone"))
    all_day = bool(raw.get("isallday"))
    if all_day:
        local = zone or UTC
        try:
            first, last = (datetime.combine(date(int(v[:4]), int(v[4:6]), int(v[6:8])), time(0), local)
                           for v in (str(when.get("start")), str(when.get("end"))))
        except (ValueError, IndexError):
            raise BadPayload(f"zoho: bad all-day dates in event {str(raw['uid'])[:60]}", provider=PROVIDER) from None
        if last <= first:
            last = first + timedelta(days=1)
        start, end = first, last
    else:
        start, end = parse_stamp(when.get("start")), parse_stamp(when.get("end"))
        if zone is not None:
            start, end = start.astimezone(zone), end.astimezone(zone)
    event = EventData(
        uid=str(raw["uid"]), summary=str(raw.get("title") or ""), start=start, end=end,
        tzid=zone.key if zone else None, all_day=all_day, description=str(raw.get("description") or ""),
        location=str(raw.get("location") or ""), transparent=str(raw.get("transparency", 0)) == "1",
    )
    return RemoteItem(str(raw["uid"]), str(raw.get("etag") or ""), event)
