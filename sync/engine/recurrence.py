"""Recurring events: keys for occurrences, and expansion of series into single occurrences.

Calendars that hold series keep them as series (one appointment for the series, one per
RECURRENCE-ID override). Where appointments are per occurrence (a calendar whose capabilities say
`series=False`), the engine expands each series inside the sync window with
recurring-ical-events: EXDATEs drop occurrences, RECURRENCE-ID overrides replace them, and times
are computed in the event's own zone so 09:00 stays 09:00 across a DST change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sync.contract import OccurrenceIds
from sync.contract.items import EventData, RemoteItem, Window
from sync.engine.plan import Incoming

if TYPE_CHECKING:
    import icalendar

__all__ = ["FUTURE", "expand_items", "incoming", "occurrences", "override_key", "recurrence_key"]

#: Marks the key of an override that holds for this and every later visit (RANGE=THISANDFUTURE).
FUTURE = "+"


def recurrence_key(recurrence_id: datetime | date | None, all_day: bool = False) -> str:
    """A stable text key for one occurrence: its RECURRENCE-ID in UTC ("" for a whole event)."""
    if recurrence_id is None:
        return ""
    if all_day or not isinstance(recurrence_id, datetime):
        return recurrence_id.strftime("%Y%m%d")
    return recurrence_id.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def override_key(event: EventData) -> str:
    """The key of the occurrence an override replaces: by its RECURRENCE-ID's own value type, not
    by the override's all-day flag (a timed visit made all-day still replaces a timed occurrence)."""
    rid_all_day = event.all_day if event.recurrence_all_day is None else event.recurrence_all_day
    key = recurrence_key(event.recurrence_id, rid_all_day)
    # RANGE=THISANDFUTURE: "+" says the change holds for every later visit too (sync.engine.series).
    return key + FUTURE if key and event.recurrence_range == "THISANDFUTURE" else key


def incoming(items: Iterable[RemoteItem]) -> list[Incoming]:
    """Items as they are: a series stays one item, an override is keyed by its RECURRENCE-ID."""
    return [Incoming(i.remote_id, i.etag, i.event, override_key(i.event)) for i in items]


def expand_items(items: Iterable[RemoteItem], window: Window) -> list[Incoming]:
    """Per-occurrence items: each series in `window` expanded, overrides applied, EXDATEs honoured."""
    groups: dict[str, list[RemoteItem]] = defaultdict(list)
    out: list[Incoming] = []
    for item in items:
        if item.event.rrule or item.event.recurrence_id is not None:
            groups[item.event.uid].append(item)
        else:
            out.append(Incoming(item.remote_id, item.etag, item.event))
    for group in groups.values():
        masters = [i for i in group if i.event.rrule and i.event.recurrence_id is None]
        if not masters:
            out.extend(incoming(group))  # overrides whose series did not change: they stand alone
            continue
        out.extend(_expand(masters[0], [i for i in group if i.event.recurrence_id is not None], window))
    return out


def occurrences(items: Iterable[RemoteItem], window: Window, ids: object = None) -> list[Incoming]:
    """Per-occurrence items (expand_items) where each occurrence of a series is named by its own id
    when the provider gives one (sync.contract.OccurrenceIds: Google's instance ids), so that one
    occurrence can be told apart, tracked, and written to without touching the series."""
    found = expand_items(items, window)
    if not isinstance(ids, OccurrenceIds):
        return found
    return [replace(i, remote_id=ids.occurrence_id(i.series_remote_id, i.event))
            if i.series_remote_id is not None and i.remote_id == i.series_remote_id and i.recurrence_key else i
            for i in found]


def _expand(master: RemoteItem, overrides: list[RemoteItem], window: Window) -> list[Incoming]:
    # Imported here: only series on per-occurrence calendars need them (~10 MB of modules).
    import icalendar
    import recurring_ical_events

    cal = icalendar.Calendar()
    cal.add_component(_vevent(master.event))
    by_rid: dict[str, RemoteItem] = {}
    for o in overrides:
        cal.add_component(_vevent(o.event))
        by_rid[override_key(o.event)] = o
    ev = master.event
    zone = _zone(ev.tzid)
    start, end = window.start, window.end
    if ev.all_day:
        start, end = start - timedelta(days=1), end + timedelta(days=1)
    result: list[Incoming] = []
    for comp in recurring_ical_events.of(cal).between(start, end):
        s = _aware(comp.get("dtstart").dt, zone)
        e = _aware(comp.get("dtend").dt, zone) if comp.get("dtend") is not None else s + (ev.end - ev.start)
        if not window.overlaps(s, e):
            continue
        rid_raw = comp.get("recurrence-id")
        rid = _aware(rid_raw.dt, zone) if rid_raw is not None else s
        key = recurrence_key(rid, ev.all_day)
        source = by_rid.get(key, master)
        base = source.event
        occurrence = base.with_changes(start=s, end=e, rrule=None, exdates=(), recurrence_id=rid)
        result.append(Incoming(source.remote_id, source.etag, occurrence, key, series_remote_id=master.remote_id))
    return result


def _zone(tzid: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tzid) if tzid else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _aware(value: datetime | date, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    return datetime(value.year, value.month, value.day, tzinfo=zone)


def _local(value: datetime, ev: EventData, zone: ZoneInfo) -> datetime | date:
    if ev.all_day:
        return value.astimezone(zone).date()
    return value.astimezone(zone)


def _vevent(ev: EventData) -> icalendar.Event:
    import icalendar

    zone = _zone(ev.tzid)
    comp = icalendar.Event()
    comp.add("uid", ev.uid)
    comp.add("summary", ev.summary)
    comp.add("dtstart", _local(ev.start, ev, zone))
    comp.add("dtend", _local(ev.end, ev, zone))
    for rule in (ev.rrule or "").split("\n"):
        if rule:
            comp.add("rrule", icalendar.vRecur.from_ical(rule))
    for ex in ev.exdates:
        comp.add("exdate", _local(ex, ev, zone))
    for extra in ev.rdates:
        comp.add("rdate", _local(extra, ev, zone))
    if ev.recurrence_id is not None:
        rid_all_day = ev.all_day if ev.recurrence_all_day is None else ev.recurrence_all_day
        rid = ev.recurrence_id
        params = {"RANGE": ev.recurrence_range} if ev.recurrence_range else {}
        comp.add("recurrence-id", rid.date() if rid_all_day else rid.astimezone(zone), parameters=params)
    return comp
