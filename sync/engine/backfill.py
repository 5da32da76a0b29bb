"""Backfill: copy the appointments that already exist onto a calendar that became a mirror.

A mirror receives copies as appointments are created or changed; one added later (a connect, a
refresh, a role change, a new practitioner, sync turned back on) would otherwise never see the
appointments booked before it. `Calendar.ask_backfill` marks it; the calendar's next sync, under
its connection's lock, queues the copies through the outbox a chunk at a time:

- each chunk commits its links, its outbox ops and the id it reached in one transaction, so a
  crash loses nothing and the next sync resumes after the last committed chunk;
- ops carry the ordinary idempotency keys (appointment, calendar, version, op): a chunk queued
  twice, or an appointment also queued by a source sync meanwhile, writes one copy;
- a copy already as it should be (sync turned off and on with nothing changed) is skipped.

The state then reads "copying" until the outbox has written every queued copy, then "done"
(audited as `calendar.backfilled`). `sync run` and `status` show the progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract.items import Window
from sync.engine.mirror_ops import ApptRef, mirror_ops
from sync.engine.outbox import checkpoint
from sync.engine.plan import ACTIVE, CalendarView, Policy
from sync.engine.reconcile import desired_copy
from sync.engine.snapshots import canonical
from sync.runtime.core import Core
from sync.store import audit
from sync.store.model import ACTIVITY, Appointment, Calendar, Link

__all__ = ["ACTOR", "BACKFILL_CHUNK", "BackfillRun", "run_backfill"]

log = logging.getLogger("clinicbot.sync.backfill")
ACTOR = "system:sync"
#: Appointments looked at per transaction: small enough that a crash repeats little.
BACKFILL_CHUNK = 200

#: progress(stage, done, total), as `sync.engine.run.Progress`.
Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class BackfillRun:
    """What one sync did for a calendar's backfill."""

    queued: int = 0
    finished: bool = False


def _scope(view: CalendarView, window: Window) -> list[ColumnElement[bool]]:
    """The appointments a backfill of this calendar looks at: the practice's, in the window (a series
    by its rule), and either active and this calendar's practitioner's, or copied here already."""
    in_window = or_(and_(Appointment.start < window.end, Appointment.end > window.start),
                    Appointment.rrule.is_not(None))
    linked = Appointment.id.in_(select(Link.appointment_id).where(Link.calendar_id == view.id))
    wanted: ColumnElement[bool] = Appointment.status.in_(ACTIVE)
    if view.practitioner_id is not None:
        wanted = and_(wanted, Appointment.practitioner_id == view.practitioner_id)
    return [Appointment.practice_id == view.practice_id, Appointment.kind != ACTIVITY, in_window, or_(wanted, linked)]


async def run_backfill(
    core: Core, view: CalendarView, policy: Policy, window: Window, now: datetime,
    progress: Progress | None = None,
) -> BackfillRun:
    """Queue the copies a backfilling mirror still lacks, chunk by chunk; finish when all are written."""
    run = BackfillRun()
    async with core.store.session() as s:
        cal = await s.get(Calendar, view.id)
        if cal is None or cal.backfill_state not in ("pending", "copying"):
            return run
        state, requested = cal.backfill_state, cal.backfill_requested_at
        if state == "pending" and cal.backfill_after == 0 and cal.backfill_total == 0:
            cal.backfill_total = int(await s.scalar(
                select(func.count()).select_from(Appointment).where(*_scope(view, window))) or 0)
        total = cal.backfill_total
    if view.role != "mirror" or not view.sync_enabled:
        return run
    while state == "pending":
        async with core.store.session() as s:
            state, queued = await _chunk(s, view, policy, window, now, requested)
            run.queued += queued
            done = await s.scalar(select(Calendar.backfill_queued).where(Calendar.id == view.id))
        checkpoint(core, "backfill.chunk")
        if progress:
            progress("backfill", int(done or 0), total)
    if state == "copying":
        async with core.store.session() as s:
            run.finished = await _finish(s, view, now)
    return run


async def _chunk(
    s: AsyncSession, view: CalendarView, policy: Policy, window: Window, now: datetime, requested: datetime | None,
) -> tuple[str, int]:
    """Queue one chunk; returns the state after it and how many appointments got an op."""
    cal = await s.get(Calendar, view.id, with_for_update=True)
    if cal is None or cal.backfill_state != "pending" or cal.backfill_requested_at != requested:
        return "stop", 0  # removed, or asked again meanwhile: the newer request carries on
    rows = list((await s.execute(
        select(Appointment.__table__).where(*_scope(view, window), Appointment.id > cal.backfill_after)
        .order_by(Appointment.id).limit(BACKFILL_CHUNK))).all())
    if not rows:
        cal.backfill_state = "copying"
        return "copying", 0
    ids = [r.id for r in rows]
    links = {lk.appointment_id: lk for lk in await s.scalars(
        select(Link).where(Link.calendar_id == view.id, Link.appointment_id.in_(ids)))}
    refs = []
    for r in rows:
        appt = canonical(r)
        want = desired_copy(appt, view, policy)
        link = links.get(appt.id)
        if link is None and want is None:
            continue  # nothing to copy, nothing to take away
        if link is not None and want is not None and link.state == "ok" and link.remote_id is not None \
                and link.content_hash == want.content_hash():
            continue  # the copy there is the copy we want
        if link is not None and link.state in ("conflict", "gone"):
            continue  # waiting for staff, or deleted by hand under the "leave" policy
        refs.append(ApptRef(appt.id, appt.version, appt.practitioner_id, appt.status == "cancelled"))
    if refs:
        await mirror_ops(s, refs, [view], policy, now)
    cal.backfill_after = ids[-1]
    cal.backfill_queued += len(refs)
    return "pending", len(refs)


async def _finish(s: AsyncSession, view: CalendarView, now: datetime) -> bool:
    """Done once no copy queued for this calendar is still waiting to be written."""
    cal = await s.get(Calendar, view.id)
    if cal is None or cal.backfill_state != "copying":
        return False
    waiting = await s.scalar(select(func.count()).select_from(Link).where(
        Link.calendar_id == view.id, Link.remote_id.is_(None), Link.state == "pending"))
    if waiting:
        return False
    cal.backfill_state = "done"
    await audit.record(s, actor=ACTOR, action="calendar.backfilled", practice_id=view.practice_id,
                       details={"calendar_id": view.id, "queued": cal.backfill_queued, "total": cal.backfill_total})
    log.info("mirror backfill finished", extra={"calendar_id": view.id, "queued": cal.backfill_queued})
    return True
