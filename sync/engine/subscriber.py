"""Turn appointment changes made in chat into outbox operations for the source and the mirrors.

Changes read from a calendar by the engine carry `origin_calendar_id` and have their outbox
operations written by `sync.engine.apply` in bulk; this subscriber handles the rest (reschedule, cancel,
no-show, completed from sync.services.appointments). It runs inside the change's transaction, so the ops
commit or roll back with the change, and it is idempotent on (appointment id, version).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.engine.mirror_ops import ApptRef, enqueue, mirror_ops, op_row
from sync.engine.plan import SOURCE_PENDING, Policy
from sync.engine.snapshots import load_mirrors
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent
from sync.store.model import ACTIVITY, Appointment, Calendar, Connection, Link, Practice

__all__ = ["SUBSCRIBER_NAME", "on_appointment_event", "register"]

SUBSCRIBER_NAME = "sync.engine.outbox"
_SOURCE_OPS = {"rescheduled": "source_reschedule", "cancelled": "source_cancel"}


def register(core: Core) -> None:
    """Hook the sync subscribers onto core.bus (once)."""
    if SUBSCRIBER_NAME in core.bus.names:
        return

    async def subscriber(session: AsyncSession, events: Sequence[AppointmentEvent]) -> None:
        for event in events:
            if event.origin_calendar_id is None:  # a sync's own changes had their ops written by apply
                await on_appointment_event(core, session, event)

    core.bus.subscribe_batch(SUBSCRIBER_NAME, subscriber)


async def on_appointment_event(core: Core, session: AsyncSession, event: AppointmentEvent) -> None:
    """Queue the remote writes one chat-originated change needs."""
    if event.origin_calendar_id is not None:
        return
    appt = await session.get(Appointment, event.appointment_id)
    if appt is None:
        return
    now = core.clock()
    practice = await session.get(Practice, appt.practice_id)
    policy = Policy.of(practice)
    source_op = _SOURCE_OPS.get(event.kind)
    if source_op and appt.source_calendar_id is not None:
        row = (await session.execute(
            select(Calendar, Connection, Link)
            .join(Connection, Connection.id == Calendar.connection_id)
            .join(Link, (Link.calendar_id == Calendar.id) & (Link.appointment_id == appt.id))
            .where(Calendar.id == appt.source_calendar_id))).first()
        if row is not None:
            cal, conn, link = row.tuple()
            writable = not cal.read_only and cal.role in ("source", "work") and link.remote_id is not None
            if writable:
                await enqueue(session, [op_row(conn.id, cal.id, appt.id, appt.version, source_op, now)])
                # Until the write lands, a sync must not import an older source edit over this change.
                link.state = SOURCE_PENDING
    if appt.kind == ACTIVITY:
        return  # a tracked event lives in its own work calendar: it is not copied to the mirrors
    mirrors = await load_mirrors(session, appt.practice_id)
    if mirrors:
        ref = ApptRef(appt.id, appt.version, appt.practitioner_id, appt.status == "cancelled")
        await mirror_ops(session, [ref], mirrors, policy, now)
