"""An in-memory CalendarProvider with the documented behaviour of a real calendar server.

It keeps a change journal so `changes()` is incremental, expires cursors on demand (CursorExpired),
enforces etags (WrongEtag) and create idempotency (AlreadyExists), and can be told to fail the
next calls with any provider error, which is how the property tests inject 412/429/5xx/timeouts.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from adapters.kit.ical import expand
from sync.contract import (
    AlreadyExists,
    BusyInterval,
    CalendarCapabilities,
    CursorExpired,
    NotFound,
    ProviderError,
    Refused,
    WrongEtag,
)
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["MemoryCalendar", "MemoryServer"]


@dataclass
class MemoryServer:
    """The shared state of one remote calendar; several provider instances may talk to it."""

    items: dict[str, RemoteItem] = field(default_factory=dict)
    #: (sequence number, remote id) for every change, deletes included.
    journal: list[tuple[int, str]] = field(default_factory=list)
    seq: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]
    #: Bumped by expire_cursors(): every cursor handed out before then is expired (CursorExpired).
    generation: int = 0
    last_seq: int = 0
    #: Errors to raise on the next calls, per operation name ("changes", "create", ...; "*" = any).
    failures: dict[str, deque[ProviderError]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    etag_counter: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]
    #: Items per page `change_pages` hands out (None: everything in one page, as `changes`).
    page_size: int | None = None

    def _bump(self, remote_id: str) -> None:
        self.last_seq = next(self.seq)
        self.journal.append((self.last_seq, remote_id))

    def new_etag(self) -> str:
        return f'"e{next(self.etag_counter)}"'

    def fail_next(self, operation: str, *errors: ProviderError) -> None:
        self.failures.setdefault(operation, deque()).extend(errors)

    def expire_cursors(self) -> None:
        self.generation += 1

    def cursor(self) -> str:
        return f"{self.generation}:{self.last_seq}"

    # Edits "by hand" on the server side, as a person in Outlook or a booking platform would.
    def put(self, event: EventData, remote_id: str | None = None) -> RemoteItem:
        rid = remote_id or event.uid
        item = RemoteItem(remote_id=rid, etag=self.new_etag(), event=event)
        self.items[rid] = item
        self._bump(rid)
        return item

    def remove(self, remote_id: str) -> None:
        del self.items[remote_id]
        self._bump(remote_id)


class MemoryCalendar:
    """CalendarProvider over a MemoryServer."""

    name = "memory"

    def __init__(
        self,
        server: MemoryServer | None = None,
        *,
        read_only: bool = False,
        series: bool = True,
    ) -> None:
        self.server = server or MemoryServer()
        self.capabilities = CalendarCapabilities(
            read_only=read_only, push=False, free_busy=True, delta=True, series=series, paged=True
        )

    def _maybe_fail(self, operation: str) -> None:
        self.server.calls.append(operation)
        for key in (operation, "*"):
            queue = self.server.failures.get(key)
            if queue:
                raise queue.popleft()

    async def changes(self, cursor: str | None, window: Window) -> ChangeSet:
        self._maybe_fail("changes")
        srv = self.server
        if cursor is None:
            items = [i for i in srv.items.values() if _in_window(i.event, window)]
            return ChangeSet(items=items, cursor=srv.cursor(), full=True)
        try:
            generation, since = (int(part) for part in cursor.split(":"))
        except ValueError:
            raise CursorExpired(f"memory: malformed cursor {cursor!r}") from None
        # A cursor from before expire_cursors() is stale even when nothing changed since.
        if generation != srv.generation or not 0 <= since <= srv.last_seq:
            raise CursorExpired("memory: cursor expired")
        touched = dict.fromkeys(rid for seq, rid in srv.journal if seq > since)
        changed, deleted = [], []
        for rid in touched:
            item = srv.items.get(rid)
            if item is None:
                deleted.append(rid)
            elif _in_window(item.event, window):
                changed.append(item)
        return ChangeSet(items=changed, deleted_ids=deleted, cursor=srv.cursor(), full=False)

    async def change_pages(self, cursor: str | None, window: Window) -> AsyncGenerator[ChangeSet, None]:
        """`changes` in pages of `server.page_size` items, the cursor on the last one; the failure
        queue "page" fails the stream before a page after the first."""
        whole = await self.changes(cursor, window)
        size = self.server.page_size or max(len(whole.items), 1)
        for start in range(0, len(whole.items), size):
            if start:
                self._maybe_fail("page")
            yield ChangeSet(items=whole.items[start:start + size], full=whole.full)
        yield ChangeSet(deleted_ids=whole.deleted_ids, cursor=whole.cursor, full=whole.full)

    async def create(self, event: EventData, idempotency_key: str) -> RemoteItem:
        self._maybe_fail("create")
        self._writable()
        rid = idempotency_key
        if rid in self.server.items:
            raise AlreadyExists(f"memory: {rid} exists")
        return self.server.put(event, rid)

    async def update(self, remote_id: str, event: EventData, if_match: str | None) -> RemoteItem:
        self._maybe_fail("update")
        self._writable()
        current = self.server.items.get(remote_id)
        if current is None:
            raise NotFound(f"memory: {remote_id} not found")
        if if_match is not None and if_match != current.etag:
            raise WrongEtag(f"memory: etag {if_match} is stale")
        return self.server.put(event, remote_id)

    async def delete(self, remote_id: str, if_match: str | None) -> None:
        self._maybe_fail("delete")
        self._writable()
        current = self.server.items.get(remote_id)
        if current is None:
            raise NotFound(f"memory: {remote_id} not found")
        if if_match is not None and if_match != current.etag:
            raise WrongEtag(f"memory: etag {if_match} is stale")
        self.server.remove(remote_id)

    async def get(self, remote_id: str) -> RemoteItem:
        self._maybe_fail("get")
        item = self.server.items.get(remote_id)
        if item is None:
            raise NotFound(f"memory: {remote_id} not found")
        return item

    async def free_busy(self, window: Window) -> list[BusyInterval]:
        self._maybe_fail("free_busy")
        # A series is busy at each occurrence, not once at its first start.
        occurrences = expand((i.event for i in self.server.items.values()), window)
        return sorted(
            (
                BusyInterval(e.start, e.end)
                for e in occurrences
                if not e.transparent and e.status != "cancelled"
            ),
            key=lambda b: (b.start, b.end),
        )

    async def aclose(self) -> None:
        return None

    def _writable(self) -> None:
        if self.capabilities.read_only:
            raise Refused("memory: read-only calendar")


def _in_window(event: EventData, window: Window) -> bool:
    return event.rrule is not None or window.overlaps(event.start, event.end)
