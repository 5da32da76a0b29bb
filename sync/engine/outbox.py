"""The outbox worker: performs queued remote writes, one connection at a time, with bounded retries.

Each connection's ops run under that connection's sync lock, so a sync and the worker never
interleave on one calendar, and connections run side by side so a slow or failing one never holds
up the others. For each op: claim it (attempts + 1; PostgreSQL uses FOR UPDATE SKIP LOCKED),
do the remote write (`sync.engine.reconcile`), then record the link and the op's outcome in one
transaction. A crash between any two of those steps loses nothing: the op is still pending, and
running it again converges (see sync.engine.reconcile for why it never duplicates).

Retry policy: RateLimited waits at least Retry-After and is not counted against the op;
Unavailable, timeouts and connection errors back off exponentially; AuthExpired marks the
connection for reconnecting and parks its ops; after `max_attempts` an op is `failed` with its
last error, visible in `clinicbot sync status`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import (
    AuthExpired,
    CalendarProvider,
    PreconditionFailed,
    ProviderError,
    RateLimited,
    Unavailable,
)
from sync.engine import conflict_rows
from sync.engine.plan import SOURCE_PENDING, CalendarView, LinkView, Policy
from sync.engine.reconcile import Outcome, desired_copy, reconcile_mirror, reconcile_source
from sync.engine.reconnect import ExpiredConnection, tell_reconnect
from sync.engine.snapshots import calendar_view, canonical
from sync.integrations.providers import open_provider
from sync.runtime.core import Core
from sync.runtime.locks import SyncBusy, connection_lock
from sync.store import audit
from sync.store.model import Appointment, Calendar, Connection, Link, OutboxOp, Practice

__all__ = ["OutboxConfig", "OutboxStats", "checkpoint", "next_due", "run_once", "run_until_idle"]

log = logging.getLogger("clinicbot.outbox")
ACTOR = "system:outbox"


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    max_attempts: int = 8
    base_delay: float = 5.0
    max_delay: float = 3600.0
    auth_park: float = 3600.0
    op_timeout: float = 60.0
    batch: int = 200


@dataclass
class OutboxStats:
    done: int = 0
    retried: int = 0
    failed: int = 0
    conflicts: int = 0
    busy: int = 0

    def add(self, other: OutboxStats) -> None:
        self.done += other.done
        self.retried += other.retried
        self.failed += other.failed
        self.conflicts += other.conflicts
        self.busy += other.busy

    @property
    def processed(self) -> int:
        return self.done + self.retried + self.failed + self.conflicts


def checkpoint(core: Core, label: str) -> None:
    """A named point between two steps; tests inject crashes here (core.services.fault_injector)."""
    hook = core.services.fault_injector
    if hook is not None:
        hook(label)


def _due(now: datetime) -> Any:
    return (OutboxOp.status == "pending") & (OutboxOp.next_attempt_at <= now)


async def run_once(core: Core, *, config: OutboxConfig | None = None, connection_id: int | None = None) -> OutboxStats:
    """Run every due op once (per connection, concurrently); returns what happened."""
    cfg = config or OutboxConfig()
    now = core.clock()
    async with core.store.session() as s:
        stmt = (select(OutboxOp.connection_id).join(Connection, Connection.id == OutboxOp.connection_id)
                .where(_due(now), Connection.status != "auth_expired").distinct())
        if connection_id is not None:
            stmt = stmt.where(OutboxOp.connection_id == connection_id)
        conn_ids = sorted((await s.scalars(stmt)).all())
    if core.store.is_sqlite:
        # SQLite has one writer: concurrent connection runs would race for the audit chain's next seq.
        results: list[OutboxStats | BaseException] = []
        for cid in conn_ids:
            try:
                results.append(await _run_connection(core, cid, cfg))
            except Exception as exc:
                results.append(exc)
    else:
        results = list(await asyncio.gather(*(_run_connection(core, cid, cfg) for cid in conn_ids),
                                            return_exceptions=True))
    stats = OutboxStats()
    for cid, res in zip(conn_ids, results, strict=True):
        if isinstance(res, BaseException):
            # The other connections have finished their work; now let the failure be seen.
            log.error("outbox connection run failed", extra={"connection_id": cid, "error": type(res).__name__})
            raise res
        stats.add(res)
    return stats


async def next_due(core: Core) -> datetime | None:
    """When the earliest pending op becomes due (None when nothing is pending)."""
    async with core.store.session() as s:
        return await s.scalar(
            select(func.min(OutboxOp.next_attempt_at)).join(Connection, Connection.id == OutboxOp.connection_id)
            .where(OutboxOp.status == "pending", Connection.status != "auth_expired"))


async def run_until_idle(
    core: Core,
    *,
    config: OutboxConfig | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    max_rounds: int = 10_000,
) -> OutboxStats:
    """Run until no op is pending, sleeping (injectable) until the next one is due."""
    total = OutboxStats()
    for _ in range(max_rounds):
        stats = await run_once(core, config=config)
        total.add(stats)
        if stats.processed:
            continue
        due = await next_due(core)
        if due is None:
            return total
        await sleep(max((due - core.clock()).total_seconds(), 0.0) + (1.0 if stats.busy else 0.0))
    return total


async def _run_connection(core: Core, connection_id: int, cfg: OutboxConfig) -> OutboxStats:
    stats = OutboxStats()
    providers: dict[int, CalendarProvider] = {}
    try:
        async with connection_lock(core, connection_id):
            batch = await _claim(core, connection_id, cfg)
            for op_id in batch:
                outcome = await _run_op(core, op_id, providers, cfg, batch)
                if outcome == "auth":
                    break
                setattr(stats, outcome, getattr(stats, outcome) + 1)
    except SyncBusy:
        stats.busy += 1
    finally:
        for p in providers.values():
            await p.aclose()
    return stats


async def _claim(core: Core, connection_id: int, cfg: OutboxConfig) -> list[int]:
    now = core.clock()
    async with core.store.session() as s:
        stmt = (select(OutboxOp.id).where(_due(now), OutboxOp.connection_id == connection_id)
                .order_by(OutboxOp.id).limit(cfg.batch))
        if core.store.is_postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        ids = list((await s.scalars(stmt)).all())
        if ids:
            await s.execute(update(OutboxOp).where(OutboxOp.id.in_(ids))
                            .values(attempts=OutboxOp.attempts + 1, updated_at=now))
    checkpoint(core, "outbox.claimed")
    return ids


@dataclass(slots=True)
class _Snapshot:
    op: str
    attempts: int
    calendar: Calendar
    conn: Connection
    view: CalendarView
    policy: Policy
    appt: Any
    link: LinkView | None
    link_id: int | None
    maybe_written: bool = False


async def _load(core: Core, op_id: int, batch: Sequence[int] = ()) -> _Snapshot | None:
    async with core.store.session() as s:
        op = await s.get(OutboxOp, op_id)
        if op is None or op.status != "pending" or op.calendar_id is None:
            return None
        cal = await s.get(Calendar, op.calendar_id)
        conn = await s.get(Connection, op.connection_id)
        if cal is None or conn is None:
            return None
        practice = await s.get(Practice, conn.practice_id)
        appt_row = await s.get(Appointment, op.appointment_id) if op.appointment_id is not None else None
        link = await s.scalar(select(Link).where(Link.appointment_id == op.appointment_id,
                                                 Link.calendar_id == op.calendar_id))
        view = LinkView(link.id, link.appointment_id, link.calendar_id, link.remote_id, link.etag,
                        link.content_hash, link.state) if link is not None else None
        snap = _Snapshot(op.op, op.attempts, cal, conn, calendar_view(cal, conn),
                         Policy.of(practice),
                         canonical(appt_row) if appt_row is not None else None, view,
                         link.id if link is not None else None)
        if op.op in ("create", "update") and (link is None or link.remote_id is None) and snap.appt is not None:
            want = desired_copy(snap.appt, snap.view, snap.policy)
            if want is None or want.status == "cancelled":  # (only then does "never copied" change anything)
                snap.maybe_written = await _maybe_written(s, op, batch)
        return snap


async def _maybe_written(s: AsyncSession, op: OutboxOp, batch: Sequence[int]) -> bool:
    """Whether an earlier attempt at this op's copy may have created it with nothing recorded: this op
    was claimed before (a crash after the remote write, a timeout), or another write of the same copy
    was, and has not finished. (Ops claimed with this one in `batch` count only if claimed before.)
    A refused attempt (503) counts too: the price is one write of a copy that may not be needed."""
    if op.attempts > 1:
        return True
    claimed_before = (OutboxOp.attempts > 1) | ((OutboxOp.attempts > 0) & OutboxOp.id.not_in(list(batch)))
    earlier = await s.scalar(
        select(func.count()).select_from(OutboxOp).where(
            OutboxOp.appointment_id == op.appointment_id, OutboxOp.calendar_id == op.calendar_id,
            OutboxOp.op.in_(("create", "update")), OutboxOp.status != "done", OutboxOp.id != op.id,
            claimed_before,
        )
    )
    return bool(earlier)


async def _run_op(core: Core, op_id: int, providers: dict[int, CalendarProvider], cfg: OutboxConfig,
                  batch: Sequence[int] = ()) -> str:
    snap = await _load(core, op_id, batch)
    if snap is None:
        return "done"
    provider = providers.get(snap.calendar.id)
    try:
        if provider is None:
            provider = providers[snap.calendar.id] = open_provider(core, snap.conn, snap.calendar)
        if snap.op in ("source_reschedule", "source_cancel"):
            coro = reconcile_source(provider, snap.appt, snap.link, snap.op)
        else:
            coro = reconcile_mirror(provider, snap.appt, snap.view, snap.link, snap.policy,
                                    maybe_written=snap.maybe_written)
        outcome = await asyncio.wait_for(coro, timeout=cfg.op_timeout)
    except (ProviderError, TimeoutError, OSError) as exc:
        return await _record_error(core, op_id, snap, exc, cfg)
    checkpoint(core, "outbox.remote_done")
    return await _record(core, op_id, snap, outcome)


async def _record(core: Core, op_id: int, snap: _Snapshot, outcome: Outcome) -> str:
    now = core.clock()
    async with core.store.session() as s:
        op = await s.get(OutboxOp, op_id)
        assert op is not None
        link = await s.get(Link, snap.link_id) if snap.link_id is not None else None
        status, result = "done", "done"
        if outcome.result == "linked" and outcome.item is not None and snap.appt is not None:
            if link is None:
                link = Link(appointment_id=snap.appt.id, calendar_id=snap.calendar.id)
                s.add(link)
            link.remote_id, link.etag = outcome.item.remote_id, outcome.item.etag
            link.state, link.last_synced_at = "ok", now
            if not outcome.source_moved_on:
                link.content_hash = outcome.item.event.content_hash()
        elif outcome.result == "unlinked" and link is not None and snap.op not in ("source_reschedule",
                                                                                  "source_cancel"):
            await s.execute(delete(Link).where(Link.id == link.id))
        elif outcome.result == "conflict" and link is not None and outcome.item is not None \
                and snap.policy.mirror_edits != "card":
            # Edited by hand since the calendar was last read: the link stays as it was, so the next
            # read sees the edit and the practice's mirror_edits (follow, keep) decides, as for any edit.
            status, result = "done", "conflicts"
        elif outcome.result == "conflict" and link is not None and outcome.item is not None:
            link.state, link.etag = "conflict", outcome.item.etag
            link.content_hash = outcome.item.event.content_hash()
            status, result = "dead", "conflicts"
            await audit.record(s, actor=ACTOR, action="sync.conflict.mirror_edited",
                               practice_id=snap.conn.practice_id, appointment_id=op.appointment_id,
                               details={"calendar_id": snap.calendar.id, "remote_start": outcome.item.event.start,
                                        "remote_end": outcome.item.event.end})
            if op.appointment_id is not None:  # staff get the card, as when a sync finds the edit
                await conflict_rows.queue_mirror_conflict(
                    s, core, practice_id=snap.conn.practice_id, link_id=link.id, calendar_id=snap.calendar.id,
                    appointment_id=op.appointment_id, remote_version=outcome.item.etag or link.content_hash or "",
                    remote_start=outcome.item.event.start, remote_end=outcome.item.event.end)
        elif outcome.result == "gone" and link is not None:
            link.state, link.content_hash = "gone", None
            await audit.record(s, actor=ACTOR, action="sync.mirror_deleted", practice_id=snap.conn.practice_id,
                               appointment_id=op.appointment_id,
                               details={"calendar_id": snap.calendar.id, "policy": "leave"})
        elif outcome.result == "refused":
            status, result = "failed", "failed"
        if snap.op in ("source_reschedule", "source_cancel") and outcome.result == "linked":
            await audit.record(s, actor=ACTOR, action=f"sync.{snap.op}", practice_id=snap.conn.practice_id,
                               appointment_id=op.appointment_id, details={"calendar_id": snap.calendar.id})
        op.status, op.updated_at = status, now
        op.last_error = outcome.note or None
        if snap.op in ("source_reschedule", "source_cancel"):
            await _clear_source_pending(s, snap.link_id, op_id)
    checkpoint(core, "outbox.recorded")
    return result


async def _clear_source_pending(s: AsyncSession, link_id: int | None, op_id: int) -> None:
    """The source write finished (or gave up): let the next sync read the source again, unless
    another chat change to the same copy is still queued."""
    if link_id is None:
        return
    link = await s.get(Link, link_id)
    if link is None or link.state != SOURCE_PENDING:
        return
    others = await s.scalar(
        select(func.count()).select_from(OutboxOp).where(
            OutboxOp.appointment_id == link.appointment_id, OutboxOp.calendar_id == link.calendar_id,
            OutboxOp.op.in_(("source_reschedule", "source_cancel")), OutboxOp.status == "pending",
            OutboxOp.id != op_id,
        )
    )
    if not others:
        link.state = "ok"


async def _record_error(core: Core, op_id: int, snap: _Snapshot, exc: BaseException, cfg: OutboxConfig) -> str:
    outcome, expired = await _record_error_row(core, op_id, snap, exc, cfg)
    if expired is not None:  # after the commit that marked it: the card is sent once per expiry
        await tell_reconnect(core, expired)
    return outcome


async def _record_error_row(
    core: Core, op_id: int, snap: _Snapshot, exc: BaseException, cfg: OutboxConfig
) -> tuple[str, ExpiredConnection | None]:
    now = core.clock()
    message = f"{type(exc).__name__}: {str(exc)[:300]}"
    log.info("outbox op failed", extra={"op_id": op_id, "error": type(exc).__name__, "attempt": snap.attempts})
    expired: ExpiredConnection | None = None
    async with core.store.session() as s:
        op = await s.get(OutboxOp, op_id)
        assert op is not None
        op.last_error, op.updated_at = message, now
        if isinstance(exc, AuthExpired):
            conn = await s.get(Connection, snap.conn.id)
            if conn is not None and conn.status != "auth_expired":
                conn.status, conn.last_error, conn.last_error_at = "auth_expired", message, now
                await audit.record(s, actor=ACTOR, action="connection.auth_expired",
                                   practice_id=conn.practice_id, details={"connection_id": conn.id})
                expired = ExpiredConnection.of(conn)
            op.attempts = max(op.attempts - 1, 0)
            op.next_attempt_at = now + timedelta(seconds=cfg.auth_park)
            return "auth", expired
        if isinstance(exc, RateLimited):
            op.attempts = max(op.attempts - 1, 0)  # the server asked us to wait; not our failure
            op.next_attempt_at = now + timedelta(seconds=max(exc.retry_after or 0.0, cfg.base_delay))
            return "retried", expired
        # A stale etag means the remote moved on: the retry re-reads it and plans again.
        transient = isinstance(exc, (Unavailable, PreconditionFailed, TimeoutError, OSError))
        if not transient or op.attempts >= cfg.max_attempts:
            op.status = "failed"
            if snap.op in ("source_reschedule", "source_cancel"):
                await _clear_source_pending(s, snap.link_id, op_id)
            return "failed", expired
        delay = min(cfg.base_delay * 2 ** max(op.attempts - 1, 0), cfg.max_delay)
        op.next_attempt_at = now + timedelta(seconds=delay)
        return "retried", expired
