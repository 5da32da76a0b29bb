"""Graph event JSON <-> EventData.

We ask Graph for UTC times (`Prefer: outlook.timezone="UTC"`) and keep the zone the event was
written in from `originalStartTimeZone` (a Windows zone name), so a copy keeps its wall-clock time
across DST. clinicbot's copies carry the category `clinicbot` (a marker, dropped again on read)
and single-value extended properties holding our uid and the appointment id. calendarView/delta
cannot expand extended properties, so the provider re-reads changed copies of ours in a $batch.
"Cancelled" copies are kept as free time with a "Cancelled: " subject, because
`POST /events/{id}/cancel` only exists for meetings with attendees.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from adapters.graph.recurrence import pattern_to_rrule, rrule_to_pattern
from adapters.graph.timezones import iana_to_windows, to_iana
from sync.contract import BadPayload
from sync.contract.items import EventData, EventStatus, RemoteItem

__all__ = [
    "CANCELLED_PREFIX",
    "CLINICBOT_CATEGORY",
    "CLINICBOT_PROPERTY_ID",
    "CLINICBOT_UID_PROPERTY_ID",
    "EXPAND_PROPERTIES",
    "event_from_graph",
    "event_to_graph",
    "format_graph_datetime",
    "is_ours",
    "parse_graph_datetime",
]

CLINICBOT_CATEGORY = "clinicbot"
#: A named property in the PS_PUBLIC_STRINGS property set, which Exchange keeps on the item.
CLINICBOT_PROPERTY_ID = "String {00020329-0000-0000-C000-000000000046} Name clinicbotAppointmentId"
CLINICBOT_UID_PROPERTY_ID = "String {00020329-0000-0000-C000-000000000046} Name clinicbotUid"
#: $expand value that brings both properties back (GET only: calendarView/delta can't expand).
EXPAND_PROPERTIES = (
    f"singleValueExtendedProperties($filter=id eq '{CLINICBOT_PROPERTY_ID}' or id eq '{CLINICBOT_UID_PROPERTY_ID}')"
)
CANCELLED_PREFIX = "Cancelled: "

_FRACTION = re.compile(r"\.([0-9]+)")
_TAG = re.compile(r"<[^>]+>")


def parse_graph_datetime(value: dict[str, Any] | None, *, what: str = "time") -> datetime:
    """An aware datetime from a Graph dateTimeTimeZone ({"dateTime": ..., "timeZone": ...})."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise BadPayload(f"graph: event {what} is missing or not a dateTimeTimeZone")
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value["dateTime"].rstrip("Z"))
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise BadPayload(f"graph: event {what} {value['dateTime']!r} is not a date-time") from None
    zone_name = value.get("timeZone") or "UTC"
    iana = to_iana(zone_name)
    if iana is None:
        raise BadPayload(f"graph: event {what} has an unknown time zone {zone_name!r}")
    if naive.tzinfo is not None:
        return naive
    return naive.replace(tzinfo=ZoneInfo(iana))


def format_graph_datetime(moment: datetime, zone_name: str | None) -> dict[str, str]:
    """A Graph dateTimeTimeZone in `zone_name` (Windows name when known, else UTC)."""
    windows = iana_to_windows(zone_name) if zone_name else None
    if windows and zone_name:
        local = moment.astimezone(ZoneInfo(zone_name))
        return {"dateTime": local.replace(tzinfo=None).isoformat(timespec="seconds"), "timeZone": windows}
    utc = moment.astimezone(UTC)
    return {"dateTime": utc.replace(tzinfo=None).isoformat(timespec="seconds"), "timeZone": "UTC"}


def _body_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    content = str(body.get("content") or "")
    if str(body.get("contentType", "text")).lower() == "html":
        content = html.unescape(_TAG.sub("", content)).strip()
    return content


def is_ours(event: Any) -> bool:
    """Whether a Graph event JSON carries clinicbot's category marker."""
    return isinstance(event, dict) and CLINICBOT_CATEGORY in (event.get("categories") or [])


def _extended(event: dict[str, Any], prop_id: str) -> str | None:
    for prop in event.get("singleValueExtendedProperties") or []:
        if isinstance(prop, dict) and str(prop.get("id", "")).lower() == prop_id.lower():
            value = prop.get("value")
            return str(value) if value else None
    return None


def event_from_graph(event: dict[str, Any]) -> RemoteItem:
    """A RemoteItem for one Graph event resource; BadPayload when it cannot be read."""
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise BadPayload("graph: event without an id")
    tzid = to_iana(event.get("originalStartTimeZone"))
    all_day = bool(event.get("isAllDay"))
    start = parse_graph_datetime(event.get("start"), what="start")
    end = parse_graph_datetime(event.get("end"), what="end")
    if all_day:
        # All-day events are floating dates; anchor them at midnight in their own zone.
        anchor = ZoneInfo(tzid) if tzid else UTC
        start = datetime.combine(start.date(), time(0), tzinfo=anchor)
        end = datetime.combine(end.date(), time(0), tzinfo=anchor)
    raw_categories = [str(c) for c in event.get("categories") or []]
    ours = CLINICBOT_CATEGORY in raw_categories
    # The marker says "clinicbot's copy"; it is not one of the event's own categories.
    categories = tuple(c for c in raw_categories if c != CLINICBOT_CATEGORY)
    subject = str(event.get("subject") or "")
    status: EventStatus = "confirmed"
    if event.get("isCancelled") or (ours and subject.startswith(CANCELLED_PREFIX)):
        status = "cancelled"
        subject = subject.removeprefix(CANCELLED_PREFIX)
    elif event.get("showAs") == "tentative":
        status = "tentative"
    rrule = None
    recurrence = event.get("recurrence")
    if event.get("type") == "seriesMaster" and isinstance(recurrence, dict):
        rrule = pattern_to_rrule(recurrence, ZoneInfo(tzid) if tzid else ZoneInfo("UTC"))
    recurrence_id = None
    if event.get("type") in ("occurrence", "exception"):
        original = event.get("originalStart")
        recurrence_id = datetime.fromisoformat(original.replace("Z", "+00:00")) if isinstance(original, str) else start
    location = event.get("location") if isinstance(event.get("location"), dict) else {}
    try:
        data = EventData(
            uid=_extended(event, CLINICBOT_UID_PROPERTY_ID) or str(event.get("iCalUId") or event["id"]),
            summary=subject,
            start=start,
            end=end,
            tzid=tzid,
            all_day=all_day,
            description=_body_text(event.get("body")),
            location=str((location or {}).get("displayName") or ""),
            status=status,
            transparent=event.get("showAs") in ("free", "workingElsewhere"),
            rrule=rrule,
            recurrence_id=recurrence_id,
            categories=categories,
            clinicbot_id=_extended(event, CLINICBOT_PROPERTY_ID),
        )
    except ValueError as exc:
        raise BadPayload(f"graph: event {event['id'][:12]}…: {exc}") from None
    etag = event.get("@odata.etag")
    if not etag and event.get("changeKey"):
        etag = f'W/"{event["changeKey"]}"'
    return RemoteItem(remote_id=event["id"], etag=etag, event=data)


def event_to_graph(event: EventData, *, show_as_free: bool = False) -> dict[str, Any]:
    """The Graph event JSON for a create or a full PATCH of `event`."""
    zone_name = event.tzid if event.tzid and iana_to_windows(event.tzid) else None
    categories = list(dict.fromkeys(event.categories))
    subject = event.summary
    show_as = "free" if (show_as_free or event.transparent) else "busy"
    if event.status == "tentative" and show_as == "busy":
        show_as = "tentative"
    if CLINICBOT_CATEGORY not in categories:
        # Everything clinicbot writes is one of its copies.
        categories.append(CLINICBOT_CATEGORY)
    if event.status == "cancelled":
        subject = CANCELLED_PREFIX + subject
        show_as = "free"
    body: dict[str, Any] = {
        "subject": subject,
        "body": {"contentType": "text", "content": event.description},
        "location": {"displayName": event.location},
        "categories": categories,
        "showAs": show_as,
        "isAllDay": event.all_day,
    }
    if event.all_day:
        body["start"] = _all_day(event.start, zone_name)
        body["end"] = _all_day(event.end if event.end > event.start else event.start + timedelta(days=1), zone_name)
    else:
        body["start"] = format_graph_datetime(event.start, zone_name)
        body["end"] = format_graph_datetime(event.end, zone_name)
    if event.rrule:
        tz = ZoneInfo(zone_name) if zone_name else ZoneInfo("UTC")
        # Graph holds one pattern and no RDATEs: a series of several rules gets its first.
        body["recurrence"] = rrule_to_pattern(
            event.rrule.split("\n")[0], event.start, tz, (iana_to_windows(zone_name) or "UTC") if zone_name else "UTC"
        )
    props = [{"id": CLINICBOT_UID_PROPERTY_ID, "value": event.uid}]
    if event.clinicbot_id is not None:
        props.append({"id": CLINICBOT_PROPERTY_ID, "value": event.clinicbot_id})
    body["singleValueExtendedProperties"] = props
    return body


def _all_day(moment: datetime, zone_name: str | None) -> dict[str, str]:
    day: date = moment.astimezone(ZoneInfo(zone_name)).date() if zone_name else moment.date()
    windows = iana_to_windows(zone_name) if zone_name else None
    return {"dateTime": f"{day.isoformat()}T00:00:00", "timeZone": windows or "UTC"}
