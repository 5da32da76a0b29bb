"""One CalDAV calendar collection as a CalendarProvider.

Reads: the sync-collection REPORT (RFC 6578) with calendar-data in the same answer, parsed as it
streams in and handed on in pages (`change_pages`), following 507-truncated pages; bodies the
server leaves out come by calendar-multiget in batches. Servers without sync-collection get a
ctag check, then an etag listing diff (cursor.py). Writes: PUT with
If-None-Match: * (create; the resource name comes from the idempotency key), PUT / DELETE with
If-Match. Overrides of a series live in their master's resource and are written by
read-modify-write of that resource under its etag (writes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from urllib.parse import unquote, urlsplit

from adapters.caldav import cursor as cursors
from adapters.caldav.resources import CollectionPaths, in_window, items_from_resource, split_id
from adapters.caldav.session import DavSession, ReportUnsupported
from adapters.caldav.writes import ResourceWriter
from adapters.caldav.xml import (
    CS,
    C,
    D,
    MultistatusParser,
    calendar_multiget,
    calendar_query,
    propfind,
    sync_collection,
)
from adapters.kit.ical.expand import expand_off_loop
from adapters.kit.ical.reader import ReadProblem
from sync.contract import (
    BadPayload,
    BusyInterval,
    CalendarCapabilities,
    CursorExpired,
    NotFound,
)
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["CalDAVCalendar"]

log = logging.getLogger("clinicbot.caldav")

GETETAG = (D, "getetag")
CALDATA = (C, "calendar-data")
GETCTAG = (CS, "getctag")
SYNC_TOKEN = (D, "sync-token")
#: Hrefs per calendar-multiget; servers cap request sizes, and iCloud answers slowly beyond this.
MULTIGET_BATCH = 250
#: Resources per page handed to the engine while a sync-collection answer streams in. Each page
#: cost the engine 9 statements besides its rows (link and overlap look-ups, the audit tail, one
#: question per domain subscriber): with 500 (about 300 KB of bodies, so parsed off the event loop)
#: a 10,000-event first sync sends 191 statements instead of 461 with 200, for ~10% less CPU and
#: ~3 MB more peak memory (issue 23, session 28). Since session 29 the questions no page changes
#: are asked once per sync (6 statements a page); 250 measured 2 MB less peak for up to 10% more CPU.
PAGE_ITEMS = 500
#: Bodies of a page from this size on are read in a worker thread, not on the event loop.
OFFLOAD_BYTES = 256 * 1024
#: 507-truncated sync pages to follow before giving up (Google pages at ~230 items).
MAX_SYNC_PAGES = 1000


class _NoSyncCollection(Exception):
    pass


class CalDAVCalendar:
    """CalendarProvider over one calendar collection URL."""

    def __init__(
        self,
        session: DavSession,
        collection_url: str,
        *,
        name: str = "caldav",
        default_tz: str | None = None,
        owns_session: bool = True,
    ) -> None:
        self.name = name
        self.capabilities = CalendarCapabilities(
            read_only=False, push=False, free_busy=False, delta=True, series=True, paged=True
        )
        self._session = session
        self._owns_session = owns_session
        self.url = collection_url if collection_url.endswith("/") else collection_url + "/"
        self._paths = CollectionPaths(unquote(urlsplit(self.url).path))
        self._default_tz = default_tz
        self._sync_supported: bool | None = None
        self._writer = ResourceWriter(session, self._paths, self.url, name=name, default_tz=default_tz)

    # --- reads -------------------------------------------------------------------------------------
    async def changes(self, cursor: str | None, window: Window) -> ChangeSet:
        """Everything in `window` (cursor None) or what changed since the cursor."""
        merged = ChangeSet()
        items: dict[str, list[RemoteItem]] = {}
        deleted: dict[str, None] = {}
        async for page in self.change_pages(cursor, window):
            for rid in page.deleted_ids:
                items.pop(rid, None)
                deleted[rid] = None
            for item in page.items:
                rid = split_id(item.remote_id)[0]
                deleted.pop(rid, None)
                items.setdefault(rid, []).append(item)
            merged.cursor, merged.full = page.cursor, page.full
            merged.notes.extend(page.notes)
            merged.kept_ids.extend(page.kept_ids)
        merged.items = [i for group in items.values() for i in group]
        merged.deleted_ids = list(deleted)
        return merged

    async def change_pages(self, cursor: str | None, window: Window) -> AsyncGenerator[ChangeSet, None]:
        """`changes` in pages of about PAGE_ITEMS resources; only the last page carries the new
        cursor. A large sync-collection answer is parsed as it streams in, so the engine plans and
        applies page k while page k+1 is still arriving, and the answer is never held whole."""
        token: str | None = None
        if cursor is not None:
            state = cursors.decode(cursor, self.name)
            if not isinstance(state, str):
                yield await self._etag_changes(state, window)
                return
            token = state
        elif self._sync_supported is False:
            yield await self._etag_listing(window)
            return
        try:
            async for page in self._sync_pages(token, window):
                yield page
        except _NoSyncCollection:
            if token is not None:
                raise CursorExpired(f"{self.name}: sync-collection stopped working", provider=self.name) from None
            self._sync_supported = False
            log.info("caldav: no sync-collection support; using ctag/etag comparison")
            yield await self._etag_listing(window)

    async def get(self, remote_id: str) -> RemoteItem:
        """Read one item (a resource, or one override inside it)."""
        resource_id, _ = split_id(remote_id)
        for item in await self._writer.fetch(resource_id):
            if item.remote_id == remote_id:
                return item
        raise NotFound(f"{self.name}: {remote_id} is not in its resource", provider=self.name)

    async def free_busy(self, window: Window) -> list[BusyInterval]:
        """Busy time from the events in `window`: opaque, not cancelled, series expanded."""
        responses, _ = await self._session.multistatus(
            "REPORT", self.url, calendar_query([GETETAG, CALDATA], window.start, window.end), depth="1"
        )
        events: list[EventData] = []
        for response in responses:
            data = response.text(*CALDATA)
            if data and not self._paths.is_collection(response.href):
                rid = self._paths.resource_id(response.href)
                try:
                    events.extend(i.event for i in items_from_resource(rid, None, data, default_tz=self._default_tz))
                except BadPayload:
                    log.warning("caldav: a resource that is not iCalendar left out of free/busy")
        busy = [
            BusyInterval(e.start, e.end)
            for e in await expand_off_loop(events, window)
            if not e.transparent and e.status != "cancelled"
        ]
        return sorted(busy, key=lambda b: (b.start, b.end))

    # --- writes (writes.py) ----------------------------------------------------------------------------
    async def create(self, event: EventData, idempotency_key: str) -> RemoteItem:
        """PUT a new resource with If-None-Match: *; a retried create raises AlreadyExists."""
        return await self._writer.create(event, idempotency_key)

    async def update(self, remote_id: str, event: EventData, if_match: str | None) -> RemoteItem:
        """PUT with If-Match; WrongEtag when someone else changed it first."""
        return await self._writer.update(remote_id, event, if_match)

    async def delete(self, remote_id: str, if_match: str | None) -> None:
        """DELETE with If-Match (an override: drop it and EXDATE its occurrence in the master)."""
        await self._writer.delete(remote_id, if_match)

    async def aclose(self) -> None:
        if self._owns_session:
            await self._session.aclose()

    # --- sync-collection -------------------------------------------------------------------------------
    async def _sync_pages(self, token: str | None, window: Window) -> AsyncIterator[ChangeSet]:
        full = token is None
        current = token
        missing: list[str] = []  # listed without a body; fetched by calendar-multiget at the end
        for _ in range(MAX_SYNC_PAGES):
            parser = MultistatusParser()
            found: dict[str, tuple[str | None, str | None]] = {}
            deleted: list[str] = []
            truncated = False
            stream = self._session.stream_multistatus(
                "REPORT", self.url, sync_collection(current, [GETETAG, CALDATA]), parser, depth="0",
                unsupported=(400, 403, 405, 501) if token is None else (),
            )
            try:
                # aclosing: a reader that stops early closes the HTTP answer now, not at GC time.
                async with contextlib.aclosing(stream):
                    async for responses in stream:
                        for response in responses:
                            if self._paths.is_collection(response.href):
                                truncated = truncated or response.status == 507
                                continue  # iCloud lists the collection itself among the changes
                            resource_id = self._paths.resource_id(response.href)
                            if response.status == 404:
                                found.pop(resource_id, None)
                                deleted.append(resource_id)
                            elif response.status in (None, 200):
                                data = response.text(*CALDATA)
                                if data is None:
                                    missing.append(resource_id)
                                else:
                                    found[resource_id] = (response.text(*GETETAG), data)
                                    if len(found) >= PAGE_ITEMS:
                                        yield await self._page(found, deleted, window, full)
                                        found, deleted = {}, []
            except ReportUnsupported as exc:
                raise _NoSyncCollection() from exc
            if parser.token is None:
                if token is None:
                    raise _NoSyncCollection()
                raise BadPayload(f"{self.name}: sync-collection answer without a sync-token", provider=self.name)
            current = parser.token
            if found or deleted:
                yield await self._page(found, deleted, window, full)
            if not truncated:
                break
        assert current is not None
        for start in range(0, len(missing), MULTIGET_BATCH):
            fetched = await self._multiget(missing[start : start + MULTIGET_BATCH])
            notes: list[str] = []
            kept: list[str] = []
            page_items = await self._materialize_off_loop(fetched, window, notes, kept)
            yield ChangeSet(items=page_items, full=full, notes=notes, kept_ids=kept)
        self._sync_supported = True
        yield ChangeSet(cursor=cursors.encode_token(current), full=full)

    async def _page(
        self, found: dict[str, tuple[str | None, str | None]], deleted: list[str], window: Window, full: bool
    ) -> ChangeSet:
        deleted_ids = [d for d in dict.fromkeys(deleted) if d not in found]
        notes: list[str] = []
        kept: list[str] = []
        items = await self._materialize_off_loop(found, window, notes, kept)
        return ChangeSet(items=items, deleted_ids=deleted_ids, full=full, notes=notes, kept_ids=kept)

    async def _materialize_off_loop(
        self, found: dict[str, tuple[str | None, str | None]], window: Window, notes: list[str], kept: list[str]
    ) -> list[RemoteItem]:
        """`_materialize`, in a worker thread once the bodies reach OFFLOAD_BYTES (one resource
        with 100,000 EXDATEs takes seconds to read; Slack wants its ack within 3)."""
        size = sum(len(data) for _, data in found.values() if data)
        if size < OFFLOAD_BYTES:
            return self._materialize(found, window, notes, kept)
        return await asyncio.to_thread(self._materialize, found, window, notes, kept)

    def _materialize(
        self, found: dict[str, tuple[str | None, str | None]], window: Window, notes: list[str],
        kept: list[str],
    ) -> list[RemoteItem]:
        """RemoteItems for the resources in `window` (those without a body are skipped: gone
        between the listing and the fetch, the next sync reports them). An event the reader
        skips or repairs, or a resource that is not iCalendar at all, is added to `notes`: one bad
        resource never fails the calendar (its id goes to `kept`: a full listing must not delete it)."""
        items: list[RemoteItem] = []
        # Consumes `found`: each body is dropped as soon as its items exist.
        for resource_id in list(found):
            etag, data = found.pop(resource_id)
            if data is None:
                continue
            problems: list[ReadProblem] = []
            try:
                resource_items = items_from_resource(resource_id, etag, data, default_tz=self._default_tz,
                                                     problems=problems)
            except BadPayload as exc:
                notes.append(f"skipped resource {resource_id}: {str(exc)[:200]}")
                kept.append(resource_id)
                continue
            notes.extend(f"{p.text()} (resource {resource_id})" for p in problems)
            if in_window(resource_items, window):
                items.extend(resource_items)
        return items

    async def _with_bodies(
        self, found: dict[str, tuple[str | None, str | None]]
    ) -> dict[str, tuple[str | None, str | None]]:
        """`found` with the bodies the server left out fetched by calendar-multiget."""
        missing = [rid for rid, (_, data) in found.items() if data is None]
        fetched = await self._multiget(missing) if missing else {}
        return {rid: fetched.get(rid, (etag, None)) if data is None else (etag, data)
                for rid, (etag, data) in found.items()}

    async def _multiget(self, resource_ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        out: dict[str, tuple[str | None, str | None]] = {}
        for start in range(0, len(resource_ids), MULTIGET_BATCH):
            batch = [self._paths.href(rid) for rid in resource_ids[start : start + MULTIGET_BATCH]]
            responses, _ = await self._session.multistatus(
                "REPORT", self.url, calendar_multiget(batch, [GETETAG, CALDATA]), depth="1"
            )
            for response in responses:
                if response.status in (None, 200) and not self._paths.is_collection(response.href):
                    out[self._paths.resource_id(response.href)] = (
                        response.text(*GETETAG),
                        response.text(*CALDATA),
                    )
        return out

    # --- ctag / etag fallback ------------------------------------------------------------------------
    async def _ctag(self) -> str | None:
        responses, _ = await self._session.multistatus("PROPFIND", self.url, propfind([GETCTAG, SYNC_TOKEN]), depth="0")
        for response in responses:
            if self._paths.is_collection(response.href):
                return response.text(*GETCTAG) or response.text(*SYNC_TOKEN)
        return None

    async def _etags(self) -> dict[str, str | None]:
        responses, _ = await self._session.multistatus("REPORT", self.url, calendar_query([GETETAG]), depth="1")
        return {
            self._paths.resource_id(r.href): r.text(*GETETAG)
            for r in responses
            if not self._paths.is_collection(r.href) and r.status in (None, 200)
        }

    async def _etag_listing(self, window: Window) -> ChangeSet:
        ctag = await self._ctag()
        etags = await self._etags()
        responses, _ = await self._session.multistatus(
            "REPORT", self.url, calendar_query([GETETAG, CALDATA], window.start, window.end), depth="1"
        )
        found: dict[str, tuple[str | None, str | None]] = {}
        for response in responses:
            if not self._paths.is_collection(response.href) and response.status in (None, 200):
                found[self._paths.resource_id(response.href)] = (
                    response.text(*GETETAG),
                    response.text(*CALDATA),
                )
        notes: list[str] = []
        kept: list[str] = []
        items = await self._materialize_off_loop(await self._with_bodies(found), window, notes, kept)
        state = {rid: cursors.etag_digest(etag) for rid, etag in etags.items()}
        return ChangeSet(items=items, cursor=cursors.encode_etags(ctag, state), full=True, notes=notes,
                         kept_ids=kept)

    async def _etag_changes(self, state: cursors.EtagState, window: Window) -> ChangeSet:
        ctag = await self._ctag()
        if ctag is not None and ctag == state.ctag:
            return ChangeSet(cursor=cursors.encode_etags(state.ctag, state.etags))
        etags = await self._etags()
        now = {rid: cursors.etag_digest(etag) for rid, etag in etags.items()}
        changed = [rid for rid, digest in now.items() if state.etags.get(rid) != digest]
        deleted = [rid for rid in state.etags if rid not in now]
        fetched = await self._multiget(changed) if changed else {}
        notes: list[str] = []
        kept: list[str] = []
        items = await self._materialize_off_loop(fetched, window, notes, kept)
        return ChangeSet(items=items, deleted_ids=deleted, cursor=cursors.encode_etags(ctag, now), notes=notes,
                         kept_ids=kept)
