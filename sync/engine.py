"""The sync engine: read a calendar's changes since its cursor, plan, apply, store the new cursor.

The new cursor is written in the same transaction as the state it reflects, so a crash either
keeps both or neither. An expired cursor triggers exactly one full resync, logged and audited.
A run with nothing to do costs one provider call and one small UPDATE.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import AuthExpired, CursorExpired, ProviderError
from sync import audit
from sync.apply import ACTOR, SyncReport, apply
from sync.core import Core
from sync.items import ChangeSet, Window
from sync.locks import connection_lock
from sync.model import Calendar, Connection, Practice
from sync.outbox import checkpoint
from sync.plan import CalendarView, Changes, Policy, plan
from sync.providers import open_provider
from sync.recurrence import expand_items, incoming
from sync.snapshots import calendar_view, load_appointments, load_links, load_mirrors, load_overlapping

__all__ = ["Progress", "SyncReport", "sync_all", "sync_calendar", "sync_connection"]

log = logging.getLogger("clinicbot.sync")

#: progress(stage, done, total): "fetch", "plan", "apply".
Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class _Target:
    conn: Connection
    cal: Calendar
    view: CalendarView
    policy: Policy
    mirrors: list[CalendarView]


async def sync_all(core: Core, *, progress: Progress | None = None) -> SyncReport:
    """Sync every enabled connection; one failing connection does not stop the others."""
    async with core.store.session() as s:
        ids = list((await s.scalars(select(Connection.id).where(Connection.sync_enabled.is_(True))
                                    .order_by(Connection.id))).all())
    total = SyncReport()
    for conn_id in ids:
        total.add(await sync_connection(core, conn_id, progress=progress))
    return total


async def sync_connection(
    core: Core, connection_id: int, *, progress: Progress | None = None, wait: float = 0.0
) -> SyncReport:
    """Sync every enabled source and mirror calendar of one connection, under its lock."""
    started = time.perf_counter()
    async with core.store.session() as s:
        cal_ids = list((await s.scalars(
            select(Calendar.id).where(Calendar.connection_id == connection_id, Calendar.sync_enabled.is_(True),
                                      Calendar.role.in_(("source", "mirror"))).order_by(Calendar.id))).all())
    report = SyncReport()
    async with connection_lock(core, connection_id, wait=wait):
        for cal_id in cal_ids:
            report.add(await _sync_locked(core, cal_id, progress))
    report.seconds = time.perf_counter() - started
    return report


async def sync_calendar(
    core: Core, calendar_id: int, *, progress: Progress | None = None, wait: float = 0.0
) -> SyncReport:
    """Sync one calendar, under its connection's lock."""
    started = time.perf_counter()
    async with core.store.session() as s:
        conn_id = await s.scalar(select(Calendar.connection_id).where(Calendar.id == calendar_id))
    if conn_id is None:
        raise LookupError(f"there is no calendar {calendar_id}; `clinicbot calendar list` shows them")
    async with connection_lock(core, conn_id, wait=wait):
        report = await _sync_locked(core, calendar_id, progress)
    report.seconds = time.perf_counter() - started
    return report


async def _load_target(core: Core, calendar_id: int) -> _Target | None:
    async with core.store.session() as s:
        cal = await s.get(Calendar, calendar_id)
        if cal is None:
            return None
        conn = await s.get(Connection, cal.connection_id)
        assert conn is not None
        practice = await s.get(Practice, conn.practice_id)
        policy = Policy.from_settings(practice.settings if practice else None)
        view = calendar_view(cal, conn)
        mirrors = await load_mirrors(s, conn.practice_id) if view.role == "source" else []
    return _Target(conn, cal, view, policy, mirrors)


async def _sync_locked(core: Core, calendar_id: int, progress: Progress | None) -> SyncReport:
    report = SyncReport(calendars=1)
    target = await _load_target(core, calendar_id)
    if target is None or not target.view.sync_enabled or target.view.role not in ("source", "mirror"):
        return report
    conn, cal, view = target.conn, target.cal, target.view
    window = Window.around(core.clock(), conn.window_days_back, conn.window_days_ahead)
    provider = open_provider(core, conn, cal)
    resync_reason: str | None = None
    try:
        if progress:
            progress("fetch", 0, 0)
        try:
            cs = await provider.changes(cal.cursor, window)
        except CursorExpired:
            log.warning("sync cursor expired; running one full resync",
                        extra={"calendar_id": cal.id, "connection_id": conn.id})
            resync_reason = "cursor_expired"
            cs = await provider.changes(None, window)
        series = provider.capabilities.series
    except ProviderError as exc:
        await _record_failure(core, conn.id, exc)
        report.failed = 1
        return report
    finally:
        await provider.aclose()
    checkpoint(core, "sync.fetched")
    now = core.clock()
    if not (cs.items or cs.deleted_ids or cs.full or resync_reason) and cs.cursor == cal.cursor:
        async with core.store.session() as s:
            await s.execute(update(Connection).where(Connection.id == conn.id)
                            .values(last_success_at=now, last_error=None))
        return report
    items = incoming(cs.items) if series else expand_items(cs.items, window)
    changes = Changes(items, list(cs.deleted_ids), cs.full, window)
    if progress:
        progress("plan", 0, len(items))
    async with core.store.session() as s:
        links = await load_links(
            s, cal.id,
            remote_ids=None if cs.full else [i.remote_id for i in items] + list(cs.deleted_ids),
            uids=[i.event.uid for i in items] if view.role == "source" and not cs.full else (),
        )
        appointments = await load_appointments(s, {lk.appointment_id for g in links.values() for lk in g})
        if view.role == "source" and items:
            lo, hi = min(i.event.start for i in items), max(i.event.end for i in items)
            for appt_id, appt in (await load_overlapping(s, view.practitioner_id, lo, hi, cal.id)).items():
                appointments.setdefault(appt_id, appt)
        actions = plan(changes, links, appointments, view, target.policy, mirrors=target.mirrors)
        if progress:
            progress("apply", 0, len(actions))
        report.add(await apply(s, core, view, actions, policy=target.policy, mirrors=target.mirrors, now=now))
        report.calendars = 1
        report.unchanged = max(len(items) - report.created - report.updated - report.deleted - report.conflicts, 0)
        if resync_reason:
            report.full_resyncs = 1
            await audit.record(s, actor=ACTOR, action="sync.full_resync", practice_id=conn.practice_id,
                               details={"calendar_id": cal.id, "reason": resync_reason})
        checkpoint(core, "sync.applied")
        await _store_cursor(s, cal.id, conn.id, cs, now)
        if progress:
            progress("apply", len(actions), len(actions))
    return report


async def _store_cursor(s: AsyncSession, calendar_id: int, connection_id: int, cs: ChangeSet, now: datetime) -> None:
    values: dict[str, object] = {"cursor": cs.cursor, "cursor_updated_at": now}
    if cs.full:
        values["last_full_sync_at"] = now
    await s.execute(update(Calendar).where(Calendar.id == calendar_id).values(**values))
    await s.execute(update(Connection).where(Connection.id == connection_id)
                    .values(last_success_at=now, last_error=None))


async def _record_failure(core: Core, connection_id: int, exc: ProviderError) -> None:
    """Remember why a connection failed (no PHI: the error class and the adapter's message)."""
    log.warning("sync failed", extra={"connection_id": connection_id, "error": type(exc).__name__})
    message = f"{type(exc).__name__}: {str(exc)[:300]}"
    async with core.store.session() as s:
        conn = await s.get(Connection, connection_id)
        if conn is None:
            return
        conn.last_error, conn.last_error_at = message, core.clock()
        if isinstance(exc, AuthExpired) and conn.status != "auth_expired":
            await audit.record(s, actor=ACTOR, action="connection.auth_expired", practice_id=conn.practice_id,
                               details={"connection_id": conn.id})
            conn.status = "auth_expired"
