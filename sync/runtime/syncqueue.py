"""Background sync requests from webhooks and timers: coalesced per connection, never inline.

A webhook must be answered in a few seconds, so it only *requests* a sync. Requests for a
connection that is already syncing mark it dirty and it runs once more afterwards; a burst of
100 notifications costs at most two syncs.

Acks before syncs: a sync is CPU work on the same event loop as the webhook route, and while it ran
during a burst of deliveries every ack waited behind its steps (p99 1.3 s for 1,000 Square
deliveries). So a requested sync starts once requests have been quiet for `settle` seconds (no new
request meanwhile), or at the latest `max_defer` seconds after it was first due, and a connection's
next run starts no sooner than `min_gap` after its previous one started. A lone delivery is synced
after `settle` (a quarter of a second); a storm is acknowledged first and synced within `max_defer`.
The runner (the engine's `sync_connection`) is
plugged in at start, so this module does not depend on the engine.

Item reads: a platform whose deliveries name the booking (SimplyBook's callbacks) asks for a read of
those bookings only (`request(..., items=[...])`), so a callback costs one fetch by id instead of a
re-read of the whole window. The ids requested for a connection's next run are gathered; any request
without ids (a poll, another platform's webhook) makes that run a full read again, as do more than
`MAX_ITEMS` ids. The runner sees the ids of its run in `requested_items` (a context variable set
around the call, so the runner's signature stays `runner(connection_id)`); None means a full read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar

__all__ = ["MAX_DEFER_SECONDS", "MAX_ITEMS", "MIN_GAP_SECONDS", "SETTLE_SECONDS", "SyncQueue", "requested_items"]

log = logging.getLogger("clinicbot.syncqueue")

Runner = Callable[[int], Awaitable[object]]


#: The least time between the starts of two syncs of one connection requested by webhooks or timers.
MIN_GAP_SECONDS = 1.0
#: More item ids than this pending for one connection: its next run reads the whole window instead.
MAX_ITEMS = 50
#: The item ids the current run was asked to read (None: the whole window), set by the queue around its runner.
requested_items: ContextVar[frozenset[str] | None] = ContextVar("clinicbot_requested_items", default=None)
#: A sync starts once no request came for this long...
SETTLE_SECONDS = 0.25
#: ...or this long after it was due, whichever comes first.
MAX_DEFER_SECONDS = 3.0


class SyncQueue:
    def __init__(self, runner: Runner | None = None, concurrency: int = 4, min_gap: float = MIN_GAP_SECONDS,
                 settle: float = SETTLE_SECONDS, max_defer: float = MAX_DEFER_SECONDS,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.runner = runner
        #: The loop's monotonic clock and asyncio.sleep, unless a test steps time itself.
        self.clock = clock
        self.sleep = sleep
        self.min_gap = min_gap
        self.settle = settle
        self.max_defer = max_defer
        self._last_request = 0.0
        self._sem = asyncio.Semaphore(concurrency)
        self._running: dict[int, asyncio.Task[None]] = {}
        self._dirty: set[int] = set()
        #: Per connection, the item ids its next run is to read; None there means the whole window.
        self._items: dict[int, set[str] | None] = {}
        self.requested = 0
        self.runs = 0

    def request(self, connection_id: int, reason: str = "", items: Iterable[str] | None = None) -> None:
        """Ask for a sync of one connection soon; cheap and safe to call from a request handler.

        `items`: read only these items (ids the platform's delivery named), where no full read is pending.
        """
        self.requested += 1
        if items is None:
            self._items[connection_id] = None
        else:
            pending = self._items.setdefault(connection_id, set())
            if pending is not None:
                pending.update(items)
                if len(pending) > MAX_ITEMS:
                    self._items[connection_id] = None
        self._last_request = self._now()
        if connection_id in self._running:
            self._dirty.add(connection_id)
            return
        self._running[connection_id] = asyncio.get_running_loop().create_task(self._run(connection_id, reason))

    def _now(self) -> float:
        return self.clock() if self.clock is not None else asyncio.get_running_loop().time()

    async def _run(self, connection_id: int, reason: str) -> None:
        try:
            while True:
                if self.runner is None:
                    log.warning("sync requested but no sync runner is configured", extra={"connection": connection_id})
                    return
                await self._quiet()
                # Requests made until now are served by this run: it reads what changed up to its start.
                self._dirty.discard(connection_id)
                items = self._items.pop(connection_id, None)
                started = self._now()
                async with self._sem:
                    self.runs += 1
                    token = requested_items.set(frozenset(items) if items is not None else None)
                    try:
                        await self.runner(connection_id)
                    except Exception as exc:  # one connection's failure never stops the queue
                        log.warning("background sync failed", extra={"connection": connection_id,
                                                                      "error": type(exc).__name__, "reason": reason})
                        if items is not None:  # the next run reads the window (a failed item read is not lost)
                            self._items[connection_id] = None
                    finally:
                        requested_items.reset(token)
                if connection_id not in self._dirty:
                    return
                # Requested again while it ran: gather what else arrives, then run once more.
                await self.sleep(max(0.0, started + self.min_gap - self._now()))
        finally:
            self._running.pop(connection_id, None)

    async def _quiet(self) -> None:
        """Wait until requests pause for `settle` seconds, or `max_defer` has passed."""
        latest = self._now() + self.max_defer
        while (now := self._now()) < latest:
            wait = self._last_request + self.settle - now
            if wait <= 0:
                return
            await self.sleep(min(wait, latest - now))

    async def drain(self) -> None:
        """Wait for every queued sync to finish (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*list(self._running.values()), return_exceptions=True)
