"""Per-connection sync status: last success, cursor age, outbox backlog and failures, token health.

Shown by `status` in chat and `clinicbot sync status`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import Refused
from sync.integrations import registry
from sync.integrations.deliveries import REJECTED
from sync.runtime.core import Core
from sync.services.errors import NotFound
from sync.services.staff import unassigned_calendars
from sync.store.model import (
    Calendar,
    Connection,
    CrmEntry,
    Link,
    OutboxOp,
    Practice,
    WebhookDelivery,
    WebhookSubscription,
)

__all__ = [
    "BackfillProgress",
    "CalendarState",
    "ConnectionStatus",
    "PracticeStatus",
    "WebhookHealth",
    "backfill_progress",
    "connection_status",
    "practice_status",
    "webhook_health",
]


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    connection_id: int
    provider: str
    account: str
    #: active | auth_expired | error | disabled (token health)
    status: str
    sync_enabled: bool
    last_success_at: datetime | None
    last_error: str | None
    #: Seconds since the oldest calendar cursor of the connection was stored (None: never synced).
    cursor_age_seconds: float | None
    pending_ops: int
    failed_ops: int
    conflicts: int
    last_failed_error: str | None
    #: What the last reads of its calendars skipped or repaired ("skipped <uid> line 12: ...").
    read_notes: tuple[str, ...] = ()
    practice_id: int = 0

    @property
    def healthy(self) -> bool:
        return self.status == "active" and self.failed_ops == 0 and not self.last_error

    @property
    def state(self) -> str:
        """What an operator needs first: the token status, or "failing" when the last sync failed."""
        if self.status == "active" and self.last_error:
            return "failing"
        return self.status if self.sync_enabled else f"{self.status}, sync off"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"healthy": self.healthy, "state": self.state}


async def connection_status(core: Core, practice_id: int | None = None,
                            session: AsyncSession | None = None) -> list[ConnectionStatus]:
    """One status row per connection, from a few grouped queries (independent of calendar size);
    in `session` when given (the practice's `status` reads everything in one transaction)."""
    now = core.clock()
    if session is None:
        async with core.store.session() as s:
            return await _connection_status(s, now, practice_id)
    return await _connection_status(session, now, practice_id)


async def _connection_status(s: AsyncSession, now: datetime, practice_id: int | None) -> list[ConnectionStatus]:
    stmt = select(Connection).order_by(Connection.id)
    if practice_id is not None:
        stmt = stmt.where(Connection.practice_id == practice_id)
    conns = list((await s.scalars(stmt)).all())
    if not conns:  # nothing connected (yet): nothing to count
        return []
    ids = [c.id for c in conns]

    def mine(column: Any) -> list[Any]:
        """One practice's: only its connections' rows are read (all of them for every practice)."""
        return [column.in_(ids)] if practice_id is not None else []

    ops = {(cid, st): n for cid, st, n in (await s.execute(
        select(OutboxOp.connection_id, OutboxOp.status, func.count())
        .where(OutboxOp.status.in_(("pending", "failed")), *mine(OutboxOp.connection_id))
        .group_by(OutboxOp.connection_id, OutboxOp.status))).tuples()}
    # The CRM log's writes are the connection's outbound writes too (sync.notify.crm).
    for cid, st, n in (await s.execute(
            select(CrmEntry.connection_id, CrmEntry.status, func.count())
            .where(CrmEntry.status.in_(("pending", "failed")), *mine(CrmEntry.connection_id))
            .group_by(CrmEntry.connection_id, CrmEntry.status))).tuples():
        ops[(cid, st)] = ops.get((cid, st), 0) + n
    cursors = dict((await s.execute(
        select(Calendar.connection_id, func.min(Calendar.cursor_updated_at))
        .where(Calendar.sync_enabled.is_(True), Calendar.role.in_(("source", "mirror")), *mine(Calendar.connection_id))
        .group_by(Calendar.connection_id))).tuples().all())
    conflicts = dict((await s.execute(
        select(Calendar.connection_id, func.count()).join(Link, Link.calendar_id == Calendar.id)
        .where(Link.state == "conflict", *mine(Calendar.connection_id))
        .group_by(Calendar.connection_id))).tuples().all())
    read_notes: dict[int, list[str]] = {}
    for cid, notes in (await s.execute(
            select(Calendar.connection_id, Calendar.read_notes)
            .where(Calendar.sync_enabled.is_(True), *mine(Calendar.connection_id))
            .order_by(Calendar.id))).tuples():
        read_notes.setdefault(cid, []).extend(str(n) for n in notes or ())
    last_failed: dict[int, str | None] = {}
    for cid, err in (await s.execute(
            select(OutboxOp.connection_id, OutboxOp.last_error)
            .where(OutboxOp.status == "failed", *mine(OutboxOp.connection_id))
            .order_by(OutboxOp.updated_at))).tuples():
        last_failed[cid] = err
    for cid, err in (await s.execute(
            select(CrmEntry.connection_id, CrmEntry.last_error)
            .where(CrmEntry.status == "failed", *mine(CrmEntry.connection_id))
            .order_by(CrmEntry.updated_at))).tuples():
        last_failed[cid] = err
    out = []
    for c in conns:
        stamp = cursors.get(c.id)
        out.append(ConnectionStatus(
            connection_id=c.id, provider=c.provider, account=c.account, status=c.status,
            sync_enabled=c.sync_enabled, last_success_at=c.last_success_at, last_error=c.last_error,
            cursor_age_seconds=(now - stamp).total_seconds() if stamp is not None else None,
            pending_ops=ops.get((c.id, "pending"), 0), failed_ops=ops.get((c.id, "failed"), 0),
            conflicts=conflicts.get(c.id, 0), last_failed_error=last_failed.get(c.id),
            read_notes=tuple(read_notes.get(c.id, ())), practice_id=c.practice_id,
        ))
    return out


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """A mirror being given the appointments that existed before it (sync.engine.backfill)."""

    calendar_id: int
    calendar: str
    connection_id: int
    #: pending (still queuing) | copying (all queued, being written)
    state: str
    #: Appointments in the window when it started.
    total: int
    #: Copies queued so far, and how many of them are not written yet.
    queued: int
    waiting: int

    @property
    def copied(self) -> int:
        return max(self.queued - self.waiting, 0)

    def describe(self) -> str:
        """'copying existing appointments: 2 of 3 written' (or how many are queued so far)."""
        if self.state == "pending" and not (self.total or self.queued):
            return "existing appointments are copied here at its next sync"
        if self.state == "pending":
            return f"copying existing appointments: {self.queued} of {self.total} queued, {self.copied} written"
        if not self.waiting:
            return f"existing appointments copied ({self.copied})"
        return f"copying existing appointments: {self.copied} of {self.queued} written"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"copied": self.copied}


async def backfill_progress(core: Core, practice_id: int | None = None,
                            session: AsyncSession | None = None) -> list[BackfillProgress]:
    """Every mirror with a backfill under way, with its copies queued and still to be written (in
    `session` when given)."""
    if session is None:
        async with core.store.session() as s:
            return await _backfill_progress(s, practice_id)
    return await _backfill_progress(session, practice_id)


async def _backfill_progress(s: AsyncSession, practice_id: int | None) -> list[BackfillProgress]:
    stmt = (select(Calendar.id, Calendar.name, Calendar.connection_id, Calendar.backfill_state,
                   Calendar.backfill_total, Calendar.backfill_queued)
            .join(Connection, Connection.id == Calendar.connection_id)
            .where(Calendar.backfill_state.in_(("pending", "copying")), Calendar.role == "mirror")
            .order_by(Calendar.id))
    if practice_id is not None:
        stmt = stmt.where(Connection.practice_id == practice_id)
    rows = (await s.execute(stmt)).tuples().all()
    waiting = dict((await s.execute(
        select(Link.calendar_id, func.count()).where(
            Link.calendar_id.in_([r[0] for r in rows]), Link.remote_id.is_(None), Link.state == "pending")
        .group_by(Link.calendar_id))).tuples().all()) if rows else {}
    return [BackfillProgress(cid, name or "calendar", conn_id, state or "", total, queued, waiting.get(cid, 0))
            for cid, name, conn_id, state, total, queued in rows]


@dataclass(frozen=True, slots=True)
class CalendarState:
    name: str
    role: str
    sync_enabled: bool
    remote_id: str = ""
    #: Bookings from platform staff nobody is mapped to (kept, shown as unassigned).
    unassigned: int = 0
    #: A backfill under way on this mirror.
    backfill: BackfillProgress | None = None


@dataclass(frozen=True, slots=True)
class PracticeStatus:
    """What chat's `status` shows: the practice, its connections and each connection's calendars."""

    practice: str
    timezone: str
    connections: tuple[ConnectionStatus, ...]
    calendars: dict[int, tuple[CalendarState, ...]]


async def practice_status(core: Core, practice_id: int) -> PracticeStatus:
    """The status of one practice's connections, with their calendars in id order (one transaction)."""
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        if practice is None:
            raise NotFound("your practice no longer exists; ask an admin")
        name, tz = practice.name, practice.timezone
        rows = (await s.execute(
            select(Calendar.connection_id, Calendar.name, Calendar.role, Calendar.sync_enabled, Calendar.remote_id,
                   Connection.provider, Calendar.id)
            .join(Connection, Connection.id == Calendar.connection_id)
            .where(Connection.practice_id == practice_id).order_by(Calendar.id))).tuples().all()
        # A backfill and unassigned bookings are about the practice's calendars: none, nothing to ask.
        waiting = {(p, e): n for p, e, _, n in await unassigned_calendars(s, practice_id)} if rows else {}
        backfills = {b.calendar_id: b for b in await backfill_progress(core, practice_id, s)} if rows else {}
        conns = tuple(await connection_status(core, practice_id, s))
    calendars: dict[int, list[CalendarState]] = {}
    for cid, cal_name, role, enabled, remote_id, provider, cal_id in rows:
        calendars.setdefault(int(cid), []).append(CalendarState(
            cal_name or "calendar", role, bool(enabled), remote_id, waiting.get((provider, remote_id), 0),
            backfills.get(cal_id)))
    return PracticeStatus(name, tz, conns, {k: tuple(v) for k, v in calendars.items()})


@dataclass(frozen=True, slots=True)
class WebhookHealth:
    """One connection's webhooks: subscriptions by state, the last accepted and refused deliveries, URL trouble."""

    connection_id: int
    provider: str
    active: int
    inactive: int
    last_delivery_at: datetime | None
    #: Subscriptions made for an address other than this server's current one (signatures that sign the
    #: URL, like Square's, fail there; deliveries go to the old address).
    stale_urls: tuple[str, ...]
    #: Deliveries refused in the last 24 hours (bad signature, stale, bad body; replays not counted),
    #: the newest refusal and its HTTP status.
    failures_24h: int = 0
    last_failure_at: datetime | None = None
    last_failure_status: int | None = None
    #: Subscription rows by state ("active", "failed", "removed"), for the admin to read.
    states: tuple[tuple[str, int], ...] = ()
    #: A booking platform whose bookings only arrive by polling (no subscription): why.
    polling_only: bool = False

    @property
    def summary(self) -> str:
        """One line for `sync status`: subscriptions, last delivery, recent failures."""
        if self.polling_only:
            return "none: polled"
        states = ", ".join(f"{n} {state}" for state, n in self.states) or "none"
        seen = self.last_delivery_at.strftime("%Y-%m-%d %H:%M") if self.last_delivery_at else "never"
        text = f"{states}; last delivery {seen}"
        if self.failures_24h:
            text += f"; {self.failures_24h} refused in 24 h (last HTTP {self.last_failure_status})"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"summary": self.summary}


async def webhook_health(core: Core, practice_id: int | None = None) -> list[WebhookHealth]:
    """Per connection with subscriptions or a booking platform: subscription states, deliveries, URL trouble."""
    base = (core.settings.public_url or "").rstrip("/")  # no public URL: nothing to compare with
    since = core.clock() - timedelta(hours=24)
    async with core.store.session() as s:
        stmt = select(Connection).order_by(Connection.id)
        if practice_id is not None:
            stmt = stmt.where(Connection.practice_id == practice_id)
        conns = list((await s.scalars(stmt)).all())
        subs = list((await s.scalars(select(WebhookSubscription).where(
            WebhookSubscription.connection_id.in_([c.id for c in conns])).order_by(WebhookSubscription.id))).all())
        accepted = WebhookDelivery.key.not_like(f"{REJECTED}%")
        last = dict((await s.execute(select(WebhookDelivery.connection_id, func.max(WebhookDelivery.seen_at))
                                     .where(accepted).group_by(WebhookDelivery.connection_id))).tuples().all())
        refused: dict[int, list[tuple[datetime, str]]] = {}
        for cid, seen_at, key in (await s.execute(
                select(WebhookDelivery.connection_id, WebhookDelivery.seen_at, WebhookDelivery.key)
                .where(WebhookDelivery.key.like(f"{REJECTED}%"), WebhookDelivery.seen_at >= since)
                .order_by(WebhookDelivery.id))).tuples():
            refused.setdefault(cid, []).append((seen_at, key))
    by_conn: dict[int, list[WebhookSubscription]] = {}
    for sub in subs:
        by_conn.setdefault(sub.connection_id, []).append(sub)
    out = []
    for conn in conns:
        mine = by_conn.get(conn.id, [])
        if not mine and not _is_booking(conn.provider):
            continue
        want = f"{base}/webhooks/{conn.provider}/{conn.id}" if base else ""
        stale = tuple(sorted({str(x.resource_id) for x in mine if x.status == "active" and want
                              and str(x.resource_id or "").startswith("http") and x.resource_id != want}))
        states = Counter(x.status for x in mine)
        fails = refused.get(conn.id, [])
        status = fails[-1][1][len(REJECTED):].split(":", 1)[0] if fails else ""
        out.append(WebhookHealth(
            conn.id, conn.provider, states.get("active", 0), sum(n for k, n in states.items() if k != "active"),
            last.get(conn.id), stale, failures_24h=len(fails), last_failure_at=fails[-1][0] if fails else None,
            last_failure_status=int(status) if status.isascii() and status.isdigit() and len(status) <= 3 else None,
            states=tuple(sorted(states.items())), polling_only=not mine))
    return out


def _is_booking(provider: str) -> bool:
    try:
        return registry.get(provider).booking_source is not None
    except Refused:
        return False
