"""One Zoho calendar as a CalendarProvider: listed in 31-day pages, polled with a changed-since cursor.

Zoho has no webhooks. The first listing reads the window in pages of at most 31 days (Zoho's limit
on `range`); after that a poll asks only for events modified since the cursor (`lastmodified`), one
request however large the calendar, deletions included (events answered with estatus "deleted" [I]).
The cursor holds the newest modification time seen and the etags of the events modified in that
same second, so a change in that second is neither lost nor reported twice.

Writes carry the event's etag (in `eventdata` for an update, as a header for a delete); a stale one
is WrongEtag. Zoho has no idempotency key: a create asks Zoho to keep a uid derived from clinicbot's
key, and looks that uid up first, so a retried create finds the first one (AlreadyExists) [I].
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from adapters.zoho.client import PROVIDER, ZohoClient
from adapters.zoho.mapping import event_data, parse_stamp, remote_item, stamp, zoho_uid
from sync.contract import (
    AlreadyExists,
    BadPayload,
    BusyInterval,
    CalendarCapabilities,
    CursorExpired,
    NotFound,
)
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["PAGE_DAYS", "ZohoCalendar"]

#: Zoho refuses a `range` longer than 31 days.
PAGE_DAYS = 31
#: An empty calendar's first cursor starts this far back, for clocks that disagree a little.
CLOCK_SKEW = timedelta(minutes=5)


def _events(body: Any) -> list[dict[str, Any]]:
    events = body.get("events") if isinstance(body, dict) else None
    if events is None:
        return []
    if not isinstance(events, list):
        raise BadPayload("zoho: events is not a list", provider=PROVIDER)
    return [e for e in events if isinstance(e, dict)]


def _encode(newest: datetime, at: dict[str, str]) -> str:
    raw = json.dumps({"t": stamp(newest), "at": at}, separators=(",", ":"), sort_keys=True).encode()
    return "zoho1:" + base64.urlsafe_b64encode(raw).decode()


def _decode(cursor: str) -> tuple[datetime, dict[str, str]]:
    try:
        if not cursor.startswith("zoho1:"):
            raise ValueError(cursor)
        body = json.loads(base64.urlsafe_b64decode(cursor[6:].encode()))
        at = body["at"]
        if not isinstance(at, dict):
            raise ValueError(at)
        return parse_stamp(body["t"]), {str(k): str(v) for k, v in at.items()}
    except (ValueError, KeyError, TypeError, binascii.Error, BadPayload, UnicodeError):
        raise CursorExpired("zoho: the sync cursor is not one clinicbot wrote", provider=PROVIDER) from None


class _Newest:
    """The newest modification time among the events seen, and the etags of those modified in that second."""

    def __init__(self, start: datetime, at: dict[str, str] | None = None) -> None:
        self.time, self.at = start, dict(at or {})

    def see(self, raw: dict[str, Any]) -> None:
        when = raw.get("lastmodifiedtime")
        if not when:
            return
        moment = parse_stamp(when)
        if moment > self.time:
            self.time, self.at = moment, {}
        if moment == self.time:
            self.at[str(raw.get("uid"))] = str(raw.get("etag") or "")

    def cursor(self) -> str:
        return _encode(self.time, self.at)


class ZohoCalendar:
    """A CalendarProvider bound to one Zoho calendar (its calendar uid)."""

    name = PROVIDER
    capabilities = CalendarCapabilities(read_only=False, push=False, free_busy=False, delta=True, series=False,
                                        paged=True)

    def __init__(self, client: ZohoClient, calendar_uid: str) -> None:
        self.client = client
        self.calendar_uid = calendar_uid
        self._base = f"calendars/{quote(calendar_uid, safe='')}/events"

    def _event_path(self, remote_id: str) -> str:
        return f"{self._base}/{quote(remote_id, safe='@')}"

    async def changes(self, cursor: str | None, window: Window) -> ChangeSet:
        out = ChangeSet()
        async for page in self.change_pages(cursor, window):
            out.items += page.items
            out.deleted_ids += page.deleted_ids
            out.notes += page.notes
            out.full, out.cursor = page.full, page.cursor
        return out

    async def change_pages(self, cursor: str | None, window: Window) -> AsyncGenerator[ChangeSet, None]:
        """A full listing in 31-day pages (no cursor), or the changes since `cursor` in one page."""
        if cursor is not None:
            yield await self._since(cursor)
            return
        newest = _Newest(datetime.now(UTC).replace(microsecond=0) - CLOCK_SKEW)
        seen: set[str] = set()
        start = window.start
        while start < window.end:
            end = min(window.end, start + timedelta(days=PAGE_DAYS))
            rng = json.dumps({"start": stamp(start), "end": stamp(end)}, separators=(",", ":"))
            page = ChangeSet(full=True)
            for raw in _events(await self.client.request("GET", self._base, params={"range": rng})):
                newest.see(raw)
                item = remote_item(raw)
                if item.remote_id in seen or not window.overlaps(item.event.start, item.event.end):
                    continue  # an event spanning two pages is listed once
                seen.add(item.remote_id)
                if raw.get("rrule"):
                    page.notes.append(f"kept only the first occurrence of repeating event {item.remote_id[:40]}")
                page.items.append(item)
            start = end
            if start >= window.end:
                page.cursor = newest.cursor()
            yield page

    async def _since(self, cursor: str) -> ChangeSet:
        since, at = _decode(cursor)
        # One second back, so changes in the cursor's own second are asked for; those already seen are dropped.
        params = {"lastmodified": stamp(since - timedelta(seconds=1))}
        newest = _Newest(since, at)
        out = ChangeSet()
        for raw in _events(await self.client.request("GET", self._base, params=params)):
            uid, etag = str(raw.get("uid") or ""), str(raw.get("etag") or "")
            if not uid or at.get(uid) == etag:
                continue
            newest.see(raw)
            if str(raw.get("estatus") or "") == "deleted":
                out.deleted_ids.append(uid)
            else:
                out.items.append(remote_item(raw))
        out.cursor = newest.cursor()
        return out

    async def get(self, remote_id: str) -> RemoteItem:
        found = _events(await self.client.request("GET", self._event_path(remote_id)))
        if not found or str(found[0].get("estatus") or "") == "deleted":
            raise NotFound(f"zoho: event {remote_id[:60]} is gone", provider=PROVIDER)
        return remote_item(found[0])

    async def create(self, event: EventData, idempotency_key: str) -> RemoteItem:
        uid = zoho_uid(idempotency_key)
        try:
            await self.get(uid)
        except NotFound:
            pass
        else:
            raise AlreadyExists(f"zoho: event {uid} was made before", remote_id=uid, provider=PROVIDER)
        body = await self.client.request("POST", self._base,
                                         params={"eventdata": json.dumps(event_data(event, uid=uid))})
        made = _events(body)
        if not made:
            raise BadPayload("zoho: the create answered no event", provider=PROVIDER)
        return remote_item(made[0])

    async def update(self, remote_id: str, event: EventData, if_match: str | None) -> RemoteItem:
        etag = if_match or (await self.get(remote_id)).etag or ""
        body = await self.client.request("PUT", self._event_path(remote_id),
                                         params={"eventdata": json.dumps(event_data(event, etag=etag))})
        done = _events(body)
        return remote_item(done[0]) if done else await self.get(remote_id)

    async def delete(self, remote_id: str, if_match: str | None) -> None:
        etag = if_match or (await self.get(remote_id)).etag or ""
        await self.client.request("DELETE", self._event_path(remote_id), headers={"etag": etag})

    async def free_busy(self, window: Window) -> list[BusyInterval]:
        listing = await self.changes(None, window)
        return [BusyInterval(i.event.start, i.event.end) for i in listing.items if not i.event.transparent]

    async def aclose(self) -> None:
        await self.client.aclose()
