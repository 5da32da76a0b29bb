"""A read-only ICS feed (Jane App, SimplePractice and other booking systems that publish one).

Each fetch of a feed is a full listing, so `changes()` returns `full=True` whenever the content
changed: whatever is missing was deleted. When nothing changed (304, or the same bytes again) it
returns an empty, non-full ChangeSet and nothing is deleted. A feed that does not parse raises
BadPayload naming the line and returns nothing at all: the caller keeps its last good data.

Cursor: "i1:" + compact JSON {"e": etag, "m": last-modified, "h": sha256 of the body}.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC

from adapters.ics.bookings import DEFAULT_PATTERN, interpret, people_of
from adapters.ics.fetch import FeedFetcher, Fetched
from adapters.kit.ical import events_from_calendar, parse_components
from adapters.kit.ical.contentlines import Component, located
from adapters.kit.ical.expand import expand_off_loop
from adapters.kit.ical.reader import ReadProblem
from adapters.kit.ical.zones import iana_zone
from sync.contract import BadPayload, BusyInterval, CalendarCapabilities, CursorExpired, NotFound, Refused
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["IcsFeed", "parse_feed"]

log = logging.getLogger("clinicbot.ics")


def parse_feed(
    body: bytes, default_tz: str | None = None, problems: list[ReadProblem] | None = None,
    pattern: str = DEFAULT_PATTERN,
) -> tuple[list[EventData], str | None, str | None]:
    """(events, calendar name, calendar zone) of a feed, with client and service read from what
    booking systems put there (adapters.ics.bookings, SUMMARY read with `pattern`).

    Events that cannot be read are left out and added to `problems` (see `parse_events`). A feed
    that is not iCalendar as a whole, or whose events all fail, raises BadPayload naming the line,
    so the caller keeps its last good data.
    """
    found: list[ReadProblem] = []
    events, name, zone = _parse(parse_components(body), default_tz, found, pattern)
    if any(p.line == 0 for p in found):
        # The fast pass keeps no line numbers: read again line by line so each problem names its line.
        found = []
        events, name, zone = _parse(located(body, tolerant=True), default_tz, found, pattern)
    skipped = [p for p in found if p.kind == "skipped"]
    if skipped and not events:
        first = skipped[0]
        raise BadPayload(f"line {first.line}: {first.what} (no event in the feed could be read)", line=first.line)
    if problems is not None:
        problems.extend(found)
    return events, name, zone


def _parse(
    calendars: list[Component], default_tz: str | None, problems: list[ReadProblem], pattern: str,
) -> tuple[list[EventData], str | None, str | None]:
    name = zone = None
    events: list[EventData] = []
    for calendar in calendars:
        name_prop = calendar.first("X-WR-CALNAME")
        zone_prop = calendar.first("X-WR-TIMEZONE")
        name = name or (name_prop.value.strip() if name_prop else None)
        found = iana_zone(zone_prop.value) if zone_prop else None
        zone = zone or (found.key if found else None)
        people = people_of(calendar)
        events.extend(interpret(e, people.get(e.uid), pattern)
                      for e in events_from_calendar(calendar, default_tz=default_tz or zone, problems=problems))
    return events, name, zone


#: Bodies from this size on are read in a worker thread, not on the event loop.
OFFLOAD_BYTES = 256 * 1024
#: How long reading one feed may take before it is refused (its last good data stays).
PARSE_SECONDS = 60.0


def _items(body: bytes, default_tz: str | None, problems: list[ReadProblem] | None,
           pattern: str = DEFAULT_PATTERN) -> list[RemoteItem]:
    events, _, _ = parse_feed(body, default_tz, problems, pattern)
    items: dict[str, RemoteItem] = {}
    for event in events:
        remote_id = _item_id(event)
        if remote_id in items:
            continue  # the same UID in two of the feed's calendars: the first copy wins
        items[remote_id] = RemoteItem(remote_id, event.content_hash()[:20], event)
    return list(items.values())


def _item_id(event: EventData) -> str:
    if event.recurrence_id is None:
        return event.uid
    return f"{event.uid}#{event.recurrence_id.astimezone(UTC):%Y%m%dT%H%M%SZ}"


class IcsFeed:
    """CalendarProvider over one feed URL; read-only."""

    def __init__(self, url: str, fetcher: FeedFetcher, *, default_tz: str | None = None,
                 pattern: str = DEFAULT_PATTERN) -> None:
        self.name = "ics"
        self.pattern = pattern
        self.capabilities = CalendarCapabilities(read_only=True, push=False, free_busy=False, delta=False, series=True)
        self.url = url
        self._fetcher = fetcher
        self._default_tz = default_tz

    async def _items(self, fetched: Fetched, problems: list[ReadProblem] | None = None) -> list[RemoteItem]:
        """The feed's items. A large body is read in a worker thread (a 9 MB feed takes seconds;
        Slack wants its ack within 3), and one that takes over PARSE_SECONDS is refused."""
        assert fetched.body is not None
        body, default_tz = fetched.body, self._default_tz
        if len(body) < OFFLOAD_BYTES:
            return _items(body, default_tz, problems, self.pattern)
        try:
            return await asyncio.wait_for(asyncio.to_thread(_items, body, default_tz, problems, self.pattern),
                                          PARSE_SECONDS)
        except TimeoutError:
            raise BadPayload(f"ics: reading the feed took longer than {PARSE_SECONDS:.0f} s; refused") from None

    async def changes(self, cursor: str | None, window: Window) -> ChangeSet:
        """The feed's events in `window` when its content changed since `cursor`; else nothing."""
        state = _decode(cursor) if cursor is not None else {}
        fetched = await self._fetcher.fetch(self.url, etag=state.get("e"), last_modified=state.get("m"))
        if fetched.body is None or (fetched.digest is not None and fetched.digest == state.get("h")):
            kept = {
                "e": fetched.etag or state.get("e"),
                "m": fetched.last_modified or state.get("m"),
                "h": state.get("h"),
            }
            return ChangeSet(cursor=_encode(kept), full=False)
        problems: list[ReadProblem] = []
        items = await self._items(fetched, problems)
        in_window = [i for i in items if _touches(i.event, window)]
        new_state = {"e": fetched.etag, "m": fetched.last_modified, "h": fetched.digest}
        unread = [p.uid for p in problems if p.kind == "skipped" and p.uid]
        return ChangeSet(items=in_window, cursor=_encode(new_state), full=True, notes=[p.text() for p in problems],
                         kept_ids=unread)

    async def get(self, remote_id: str) -> RemoteItem:
        """Fetch the feed and return one item; NotFound when it is no longer listed."""
        fetched = await self._fetcher.fetch(self.url)
        for item in await self._items(fetched):
            if item.remote_id == remote_id:
                return item
        raise NotFound(f"ics: {remote_id} is no longer in the feed", provider="ics")

    async def free_busy(self, window: Window) -> list[BusyInterval]:
        """Busy time from the feed's events (opaque, not cancelled, series expanded)."""
        fetched = await self._fetcher.fetch(self.url)
        events = [i.event for i in await self._items(fetched)]
        return sorted(
            (
                BusyInterval(e.start, e.end)
                for e in await expand_off_loop(events, window)
                if not e.transparent and e.status != "cancelled"
            ),
            key=lambda b: (b.start, b.end),
        )

    async def create(self, event: EventData, idempotency_key: str) -> RemoteItem:
        raise Refused("ics: a calendar feed is read-only", provider="ics")

    async def update(self, remote_id: str, event: EventData, if_match: str | None) -> RemoteItem:
        raise Refused("ics: a calendar feed is read-only", provider="ics")

    async def delete(self, remote_id: str, if_match: str | None) -> None:
        raise Refused("ics: a calendar feed is read-only", provider="ics")

    async def aclose(self) -> None:
        await self._fetcher.aclose()


def _touches(event: EventData, window: Window) -> bool:
    if event.rrule:
        return event.start < window.end
    return window.overlaps(event.start, event.end) or (
        event.start == event.end and window.start <= event.start < window.end
    )


def _encode(state: dict[str, str | None]) -> str:
    return "i1:" + json.dumps(state, separators=(",", ":"), sort_keys=True)


def _decode(cursor: str) -> dict[str, str]:
    kind, sep, payload = cursor.partition(":")
    try:
        if kind != "i1" or not sep:
            raise ValueError(kind)
        data = json.loads(payload)
        if not isinstance(data, dict) or not set(data) <= {"e", "m", "h"}:
            raise ValueError("shape")
        return {k: str(v) for k, v in data.items() if isinstance(v, str)}
    except ValueError:
        raise CursorExpired("ics: unreadable cursor; the feed will be read in full", provider="ics") from None
