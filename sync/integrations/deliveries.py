"""The webhook replay memory: every accepted delivery's key, checked in memory, persisted in batches, bounded.

Square and Acuity sign no timestamp, so a captured delivery could be replayed forever; remembering
its platform event id (or the body's hash where there is none) stops that, across restarts.

How a delivery is checked, and when it is durable:
- Each process keeps, per (integration, connection), the newest `KEEP` keys in memory, loaded from
  `webhook_delivery` on the connection's first delivery after start (one SELECT). The check and the
  insert into that memory are one step on the event loop (no await between them), so two copies
  arriving at once cannot both pass, and a replay is refused without touching the database.
- A new key is answered at once; its row is written by one writer task that commits every key that
  arrived meanwhile in ONE transaction (a group commit: `INSERT ... ON CONFLICT DO NOTHING`). The
  2xx is therefore sent before the row is durable, by one batch (BATCH_PAUSE, 50 ms, plus one commit; longer only while
  the database is slow or down, when the writer retries with backoff and keeps the keys).
- Why that is safe: a delivery only *requests* a sync, and the sync reads the truth from the
  platform's API. A crash inside that window loses the row, so one replay of that delivery after the
  restart would be accepted once: it would cost one API read and change nothing the platform does
  not say. The requested sync itself was never durable (the sync queue is in memory); the poll every
  CLINICBOT_SYNC_POLL_SECONDS is the backstop for it, as for a lost delivery.
- Several replicas: a writer's batch also reads (at most once a second per connection) the keys
  other replicas stored for its connections since it last looked. So a replay sent to another
  replica is refused there once that replica's own next batch for the connection has caught up; one
  arriving sooner is answered 2xx (one more sync request, which coalesces with the others).
Each connection keeps its newest KEEP rows; the trim runs in the writer's transaction about once
every TRIM_SLACK rows, so the table never grows without bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.core import Core
from sync.store.model import WebhookDelivery

__all__ = ["KEEP", "REJECTED", "DeliveryMemory", "body_key", "delivery_memory", "first_delivery"]

log = logging.getLogger("clinicbot.webhooks")

#: Keys kept per connection: far more than any platform retries within its retry period.
KEEP = 5000
#: Trim a connection's rows to KEEP once about TRIM_SLACK were written since its last trim, so a
#: connection holds about KEEP + TRIM_SLACK rows at most.
TRIM_SLACK = 500
#: The writer gathers keys this long after the first of a batch arrives: one transaction per burst
#: step instead of one per few deliveries (each round trip to the database's thread costs the loop).
BATCH_PAUSE = 0.05
#: How often, per connection, a batch also reads the keys other replicas stored meanwhile.
CATCH_UP_SECONDS = 1.0
#: The writer's wait after a failed batch, doubled up to the maximum while the database stays down.
RETRY_FIRST, RETRY_MAX = 0.5, 30.0
#: How long `stop` waits for unsaved keys to be written before it gives up (and says how many).
STOP_WAIT = 10.0

Slot = tuple[str, int]
#: The key prefix of a refused delivery's row (webhook health: failures, the last one and why). Such
#: keys are never an event id or a body hash, so they cannot refuse a real delivery.
REJECTED = "rejected:"


def body_key(body: bytes) -> str:
    """The key of a delivery without an event id: its body's SHA-256."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _normal(key: str) -> str:
    return key if len(key) <= 128 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass
class _Seen:
    """One connection's remembered keys (oldest first) and the newest row id read from the table."""

    keys: OrderedDict[str, None] = field(default_factory=OrderedDict)
    last_id: int = 0
    written_since_trim: int = 0
    caught_up_at: float = float("-inf")

    def add(self, key: str, keep: int) -> None:
        self.keys[key] = None
        while len(self.keys) > keep:
            self.keys.popitem(last=False)


class DeliveryMemory:
    """One process's replay memory in front of `webhook_delivery`, with its group-commit writer."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._seen: dict[Slot, _Seen] = {}
        self._loads: dict[Slot, asyncio.Task[_Seen]] = {}
        self._pending: list[tuple[str, int, str, datetime]] = []
        self._queued = 0
        self._written = 0
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        self.last_error: str | None = None

    async def first(self, integration: str, connection_id: int, key: str) -> bool:
        """True when `key` is new for this connection (it is remembered now); False for a replay."""
        key = _normal(key)
        seen = await self._slot((integration, connection_id))
        if key in seen.keys:
            return False
        seen.add(key, KEEP)  # no await since the check: atomic on the loop
        self._pending.append((integration, connection_id, key, self.core.clock()))
        self._queued += 1
        self._start_writer()
        self._wake.set()
        return True

    async def preload(self, integration: str, connection_id: int) -> None:
        """Load the connection's memory now, ahead of its first delivery (a known connection only)."""
        await self._slot((integration, connection_id))

    def note_rejected(self, integration: str, connection_id: int, status: int) -> None:
        """Keep a row saying a delivery to this connection was refused with `status` (for webhook health)."""
        key = f"{REJECTED}{status}:{uuid.uuid4().hex}"
        self._pending.append((integration, connection_id, key, self.core.clock()))
        self._queued += 1
        self._start_writer()
        self._wake.set()

    async def _slot(self, slot: Slot) -> _Seen:
        seen = self._seen.get(slot)
        if seen is not None:
            return seen
        task = self._loads.get(slot)
        if task is None:
            task = self._loads[slot] = asyncio.get_running_loop().create_task(self._load(slot))
        try:
            # Shielded: a caller that goes away (a dropped request) does not cancel the others' load.
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._loads.pop(slot, None)

    async def _load(self, slot: Slot) -> _Seen:
        integration, connection_id = slot
        async with self.core.store.session() as s:
            rows = (await s.execute(
                select(WebhookDelivery.id, WebhookDelivery.key)
                .where(WebhookDelivery.integration == integration, WebhookDelivery.connection_id == connection_id)
                .order_by(WebhookDelivery.id.desc()).limit(KEEP))).tuples().all()
        seen = self._seen.get(slot)
        if seen is None:  # (a writer pass may have made it meanwhile)
            seen = self._seen[slot] = _Seen()
        for row_id, key in reversed(rows):  # oldest first
            if not key.startswith(REJECTED):
                seen.add(key, KEEP)
            seen.last_id = max(seen.last_id, int(row_id))
        return seen

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="webhook-delivery-writer")

    async def _write_loop(self) -> None:
        wait = RETRY_FIRST
        while True:
            await self._wake.wait()
            await asyncio.sleep(BATCH_PAUSE)
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await self._write(batch)
            except Exception as exc:  # the database is slow or down: keep the keys, try again later
                self._pending[:0] = batch
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.warning("webhook delivery records not saved yet; retrying",
                            extra={"keys": len(self._pending), "error": type(exc).__name__, "retry_in": wait})
                await asyncio.sleep(wait)
                wait = min(wait * 2, RETRY_MAX)
                self._wake.set()
                continue
            wait = RETRY_FIRST
            self.last_error = None
            self.batches += 1
            async with self._changed:
                self._written += len(batch)
                self._changed.notify_all()

    async def _write(self, batch: list[tuple[str, int, str, datetime]]) -> None:
        rows = [{"integration": i, "connection_id": c, "key": k, "seen_at": t} for i, c, k, t in batch]
        slots = sorted({(i, c) for i, c, _, _ in batch})
        insert: Any = pg_insert if self.core.store.is_postgres else sqlite_insert
        async with self.core.store.session() as s:
            await s.execute(insert(WebhookDelivery).on_conflict_do_nothing(
                index_elements=["integration", "connection_id", "key"]), rows)
            for slot in slots:
                await self._catch_up(s, slot, sum(1 for i, c, _, _ in batch if (i, c) == slot))

    async def _catch_up(self, s: AsyncSession, slot: Slot, written: int) -> None:
        """Read the keys other replicas stored for this connection since we last looked; trim now and then."""
        connection_id = slot[1]
        seen = self._seen.setdefault(slot, _Seen())
        now = asyncio.get_running_loop().time()
        if now - seen.caught_up_at >= CATCH_UP_SECONDS:
            seen.caught_up_at = now
            await self._read_others(s, slot, seen)
        seen.written_since_trim += written
        if seen.written_since_trim < TRIM_SLACK:
            return
        seen.written_since_trim = 0
        count = await s.scalar(select(func.count()).select_from(WebhookDelivery)
                               .where(WebhookDelivery.connection_id == connection_id))
        if (count or 0) > KEEP:
            keep = (select(WebhookDelivery.id).where(WebhookDelivery.connection_id == connection_id)
                    .order_by(WebhookDelivery.id.desc()).limit(KEEP).scalar_subquery())
            await s.execute(delete(WebhookDelivery).where(
                WebhookDelivery.connection_id == connection_id, WebhookDelivery.id.not_in(keep)))

    async def _read_others(self, s: AsyncSession, slot: Slot, seen: _Seen) -> None:
        integration, connection_id = slot
        for row_id, key in (await s.execute(
                select(WebhookDelivery.id, WebhookDelivery.key)
                .where(WebhookDelivery.integration == integration, WebhookDelivery.connection_id == connection_id,
                       WebhookDelivery.id > seen.last_id)
                .order_by(WebhookDelivery.id))).tuples():
            if key not in seen.keys and not key.startswith(REJECTED):
                seen.add(key, KEEP)
            seen.last_id = max(seen.last_id, int(row_id))

    @property
    def unsaved(self) -> int:
        """Keys accepted but not yet committed."""
        return self._queued - self._written

    async def flush(self) -> None:
        """Wait until every key accepted so far is committed."""
        target = self._queued
        if self._written >= target:
            return
        self._start_writer()
        self._wake.set()
        async with self._changed:
            await self._changed.wait_for(lambda: self._written >= target)

    async def stop(self) -> None:
        """Write what is unsaved (waiting at most STOP_WAIT), then stop the writer."""
        if self._writer is not None and self.unsaved:
            try:
                await asyncio.wait_for(self.flush(), STOP_WAIT)
            except TimeoutError:
                log.warning("webhook delivery records lost at shutdown; polling covers their syncs",
                            extra={"keys": self.unsaved})
        for task in [self._writer, *self._loads.values()]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [self._writer, *self._loads.values()] if t is not None],
                             return_exceptions=True)
        self._writer = None
        self._loads.clear()


def delivery_memory(core: Core) -> DeliveryMemory:
    """The core's replay memory, made on first use."""
    memory = core.services.deliveries
    if memory is None:
        memory = core.services.deliveries = DeliveryMemory(core)
    assert isinstance(memory, DeliveryMemory)
    return memory


async def first_delivery(core: Core, integration: str, connection_id: int, key: str) -> bool:
    """Remember `key`; True when it is new, False when this connection saw it before (see the module doc)."""
    return await delivery_memory(core).first(integration, connection_id, key)
