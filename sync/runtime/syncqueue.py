"""Background sync requests from webhooks and timers: coalesced per connection, never inline.

A webhook must be answered in a few seconds, so it only *requests* a sync. Requests for a
connection that is already syncing mark it dirty and it runs once more afterwards; a burst of
100 notifications costs at most two syncs. The runner (the engine's `sync_connection`) is
plugged in at start, so this module does not depend on the engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["SyncQueue"]

log = logging.getLogger("clinicbot.syncqueue")

Runner = Callable[[int], Awaitable[object]]


class SyncQueue:
    def __init__(self, runner: Runner | None = None, concurrency: int = 4) -> None:
        self.runner = runner
        self._sem = asyncio.Semaphore(concurrency)
        self._running: dict[int, asyncio.Task[None]] = {}
        self._dirty: set[int] = set()
        self.requested = 0
        self.runs = 0

    def request(self, connection_id: int, reason: str = "") -> None:
        """Ask for a sync of one connection soon; cheap and safe to call from a request handler."""
        self.requested += 1
        if connection_id in self._running:
            self._dirty.add(connection_id)
            return
        self._running[connection_id] = asyncio.get_running_loop().create_task(self._run(connection_id, reason))

    async def _run(self, connection_id: int, reason: str) -> None:
        try:
            while True:
                self._dirty.discard(connection_id)
                if self.runner is None:
                    log.warning("sync requested but no sync runner is configured", extra={"connection": connection_id})
                    return
                async with self._sem:
                    self.runs += 1
                    try:
                        await self.runner(connection_id)
                    except Exception as exc:  # one connection's failure never stops the queue
                        log.warning("background sync failed", extra={"connection": connection_id,
                                                                      "error": type(exc).__name__, "reason": reason})
                if connection_id not in self._dirty:
                    return
        finally:
            self._running.pop(connection_id, None)

    async def drain(self) -> None:
        """Wait for every queued sync to finish (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*list(self._running.values()), return_exceptions=True)
