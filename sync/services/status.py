"""Per-connection sync status: last success, cursor age, outbox backlog and failures, token health.

Shown by `status` in chat and `clinicbot sync status`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from sync.runtime.core import Core
from sync.services.errors import NotFound
from sync.services.staff import unassigned_calendars
from sync.store.model import Calendar, Connection, Link, OutboxOp, Practice

__all__ = [
    "CalendarState",
    "ConnectionStatus",
    "PracticeStatus",
    "WebhookHealth",
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


async def connection_status(core: Core, practice_id: int | None = None) -> list[ConnectionStatus]:
    """One status row per connection, from four grouped queries (independent of calendar size)."""
    now = core.clock()
    async with core.store.session() as s:
        stmt = select(Connection).order_by(Connection.id)
        if practice_id is not None:
            stmt = stmt.where(Connection.practice_id == practice_id)
        conns = list((await s.scalars(stmt)).all())
        ops = {(cid, st): n for cid, st, n in (await s.execute(
            select(OutboxOp.connection_id, OutboxOp.status, func.count())
            .where(OutboxOp.status.in_(("pending", "failed")))
            .group_by(OutboxOp.connection_id, OutboxOp.status))).tuples()}
        cursors = dict((await s.execute(
            select(Calendar.connection_id, func.min(Calendar.cursor_updated_at))
            .where(Calendar.sync_enabled.is_(True), Calendar.role.in_(("source", "mirror")))
            .group_by(Calendar.connection_id))).tuples().all())
        conflicts = dict((await s.execute(
            select(Calendar.connection_id, func.count()).join(Link, Link.calendar_id == Calendar.id)
            .where(Link.state == "conflict").group_by(Calendar.connection_id))).tuples().all())
        read_notes: dict[int, list[str]] = {}
        for cid, notes in (await s.execute(
                select(Calendar.connection_id, Calendar.read_notes).where(Calendar.sync_enabled.is_(True))
                .order_by(Calendar.id))).tuples():
            read_notes.setdefault(cid, []).extend(str(n) for n in notes or ())
        last_failed: dict[int, str | None] = {}
        for cid, err in (await s.execute(
                select(OutboxOp.connection_id, OutboxOp.last_error).where(OutboxOp.status == "failed")
                .order_by(OutboxOp.updated_at))).tuples():
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
class CalendarState:
    name: str
    role: str
    sync_enabled: bool
    remote_id: str = ""
    #: Bookings from platform staff nobody is mapped to (kept, shown as unassigned).
    unassigned: int = 0


@dataclass(frozen=True, slots=True)
class PracticeStatus:
    """What chat's `status` shows: the practice, its connections and each connection's calendars."""

    practice: str
    timezone: str
    connections: tuple[ConnectionStatus, ...]
    calendars: dict[int, tuple[CalendarState, ...]]


async def practice_status(core: Core, practice_id: int) -> PracticeStatus:
    """The status of one practice's connections, with their calendars in id order."""
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        if practice is None:
            raise NotFound("your practice no longer exists; ask an admin")
        name, tz = practice.name, practice.timezone
        rows = (await s.execute(
            select(Calendar.connection_id, Calendar.name, Calendar.role, Calendar.sync_enabled, Calendar.remote_id,
                   Connection.provider)
            .join(Connection, Connection.id == Calendar.connection_id)
            .where(Connection.practice_id == practice_id).order_by(Calendar.id))).tuples().all()
        waiting = {(p, e): n for p, e, _, n in await unassigned_calendars(s, practice_id)}
    calendars: dict[int, list[CalendarState]] = {}
    for cid, cal_name, role, enabled, remote_id, provider in rows:
        calendars.setdefault(int(cid), []).append(CalendarState(
            cal_name or "calendar", role, bool(enabled), remote_id, waiting.get((provider, remote_id), 0)))
    conns = tuple(await connection_status(core, practice_id))
    return PracticeStatus(name, tz, conns, {k: tuple(v) for k, v in calendars.items()})


@dataclass(frozen=True, slots=True)
class WebhookHealth:
    """One connection's webhooks: its subscriptions by state, its last accepted delivery, and URL trouble."""

    connection_id: int
    provider: str
    active: int
    inactive: int
    last_delivery_at: datetime | None
    #: Subscriptions made for an address other than this server's current one (signatures that sign the
    #: URL, like Square's, fail there; deliveries go to the old address).
    stale_urls: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def webhook_health(core: Core, practice_id: int | None = None) -> list[WebhookHealth]:
    """Per connection with webhook subscriptions: their states, the last delivery, subscriptions at an old URL."""
    from sync.store.model import WebhookDelivery, WebhookSubscription

    base = (core.settings.public_url or "").rstrip("/")  # no public URL: nothing to compare with
    async with core.store.session() as s:
        stmt = (select(WebhookSubscription, Connection)
                .join(Connection, Connection.id == WebhookSubscription.connection_id)
                .order_by(WebhookSubscription.connection_id, WebhookSubscription.id))
        if practice_id is not None:
            stmt = stmt.where(Connection.practice_id == practice_id)
        rows = (await s.execute(stmt)).tuples().all()
        last = dict((await s.execute(select(WebhookDelivery.connection_id, func.max(WebhookDelivery.seen_at))
                                     .group_by(WebhookDelivery.connection_id))).tuples().all())
    by_conn: dict[int, list[Any]] = {}
    providers: dict[int, str] = {}
    for sub, conn in rows:
        by_conn.setdefault(conn.id, []).append(sub)
        providers[conn.id] = conn.provider
    out = []
    for cid, subs in by_conn.items():
        want = f"{base}/webhooks/{providers[cid]}/{cid}" if base else ""
        stale = tuple(sorted({str(x.resource_id) for x in subs if x.status == "active" and want
                              and str(x.resource_id or "").startswith("http") and x.resource_id != want}))
        out.append(WebhookHealth(cid, providers[cid], sum(1 for x in subs if x.status == "active"),
                                 sum(1 for x in subs if x.status != "active"), last.get(cid), stale))
    return out
