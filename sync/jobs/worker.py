"""The sync core at run time, inside `clinicbot serve`: the outbox loop, periodic polling of
connections, and the runner behind webhook-requested syncs.

- The outbox loop performs due remote writes. It wakes when a transaction that queued work
  commits, when the earliest pending op falls due (Retry-After, backoff), and every few seconds
  regardless, so ops written by another replica are picked up too.
- The poll loop requests a sync of every enabled connection whose last success is older than
  CLINICBOT_SYNC_POLL_SECONDS; push-capable providers also get webhook-driven syncs in between.
- All syncs go through the SyncQueue, so a connection never syncs twice at once in a process,
  and the engine's per-connection lock keeps replicas apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select

from sync.engine import outbox, subscriber
from sync.engine.run import sync_connection
from sync.integrations.push import ensure_push_quietly
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent
from sync.runtime.syncqueue import SyncQueue
from sync.store.database import after_commit
from sync.store.model import Connection

__all__ = ["SyncWorker"]

log = logging.getLogger("clinicbot.worker")

#: How long stop() waits for the loops to finish their current round before cancelling them.
STOP_GRACE_SECONDS = 5.0

class SyncWorker:
    def __init__(self, core: Core, *, idle_seconds: float = 5.0, poll_seconds: float | None = None) -> None:
        self.core = core
        self.idle_seconds = idle_seconds
        self.poll_seconds = core.settings.sync_poll_seconds if poll_seconds is None else poll_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.queue: SyncQueue = core.services.sync_queue or SyncQueue()
        core.services.sync_queue = self.queue

    async def start(self) -> None:
        subscriber.register(self.core)  # a Core built by hand, not by sync.boot.open_core
        if "sync.jobs.worker.wake" not in self.core.bus.names:
            async def wake_on_commit(session: Any, _events: Sequence[AppointmentEvent]) -> None:
                after_commit(session, self.wake)  # once per batch: a page of imports wakes it once

            self.core.bus.subscribe_batch("sync.jobs.worker.wake", wake_on_commit)
        if self.queue.runner is None:  # an embedder or test may have installed its own
            self.queue.runner = self._sync_connection
        self.core.services.sync_runner = self.core.services.sync_runner or self.queue.runner
        self._tasks = [asyncio.create_task(self._outbox_loop(), name="outbox")]
        if self.poll_seconds:
            self._tasks.append(asyncio.create_task(self._poll_loop(), name="sync-poll"))
        log.info("sync worker started", extra={"poll_seconds": self.poll_seconds})

    def wake(self) -> None:
        self._wake.set()

    async def _sync_connection(self, connection_id: int) -> None:
        report = await sync_connection(self.core, connection_id, wait=30.0)
        if report.outbox_queued:
            self.wake()
        if report.failed and self.core.services.alarms_wake is not None:
            self.core.services.alarms_wake()  # an expired sign-in is told now, not at the next round
        # Graph/Google channels: opened after the first good sync, renewed when near expiry or after
        # a lifecycle event; a no-op (no provider call) otherwise.
        await ensure_push_quietly(self.core, connection_id)

    async def _outbox_loop(self) -> None:
        while not self._stopping.is_set():
            timeout = self.idle_seconds
            try:
                stats = await outbox.run_once(self.core)
                if stats.processed:
                    continue
                due = await outbox.next_due(self.core)
                if due is not None:
                    timeout = min(timeout, max((due - self.core.clock()).total_seconds(), 0.05))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the loop alive; the op itself records its error
                log.warning("outbox round failed", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()

    async def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                for connection_id in await self.stale_connections():
                    self.queue.request(connection_id, reason="poll")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("poll round failed", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), min(self.poll_seconds, 60.0))

    async def stale_connections(self) -> list[int]:
        """Enabled, healthy connections whose last successful sync is older than the poll interval."""
        cutoff = self.core.clock() - timedelta(seconds=self.poll_seconds)
        async with self.core.store.session() as s:
            rows = await s.scalars(
                select(Connection.id).where(
                    Connection.sync_enabled.is_(True),
                    Connection.status != "auth_expired",
                    or_(Connection.last_success_at.is_(None), Connection.last_success_at < cutoff),
                ).order_by(Connection.id)
            )
            return list(rows.all())

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Let each loop finish the round it is in, then stop it.

        Cancelling a loop in the middle of a database call returns its connection to the pool
        mid-transaction, which SQLAlchemy reports as an error on every shutdown; a loop that
        outlives the grace period (a slow remote write) is cancelled all the same.
        """
        self._stopping.set()
        self._wake.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.queue.close()
        self._tasks = []
