"""Open conflicts (mirror copies edited by hand) and the staff decisions that close them.

- keep the booking: the copy is overwritten with the appointment as booked;
- accept the calendar's time: the appointment is rescheduled to the copy's time (and so
  rescheduled at the source and on the other mirrors);
Either decision is audited with the staff member who made it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import String, cast, select, update

from sync.engine.mirror_ops import enqueue, op_row
from sync.integrations.providers import open_provider
from sync.runtime.core import Core
from sync.services.appointments import AppointmentError, reschedule
from sync.services.errors import NotFound
from sync.store import audit
from sync.store.database import hold_write_lock
from sync.store.model import Appointment, Calendar, ConflictNotice, Connection, Link

__all__ = ["ConflictNotFound", "ConflictView", "list_conflicts", "resolve_conflict"]

Decision = Literal["keep_booking", "accept_calendar"]


class ConflictNotFound(NotFound):
    """No open or decided conflict with that id in the person's practice."""


@dataclass(frozen=True, slots=True)
class ConflictView:
    link_id: int
    appointment_id: int
    calendar_id: int
    calendar_name: str


async def list_conflicts(core: Core, practice_id: int | None = None) -> list[ConflictView]:
    """Mirror copies waiting for a staff decision."""
    async with core.store.session() as s:
        stmt = (select(Link.id, Link.appointment_id, Link.calendar_id, Calendar.name)
                .join(Calendar, Calendar.id == Link.calendar_id)
                .join(Appointment, Appointment.id == Link.appointment_id)
                .where(Link.state == "conflict").order_by(Link.id))
        if practice_id is not None:
            stmt = stmt.where(Appointment.practice_id == practice_id)
        return [ConflictView(*row) for row in (await s.execute(stmt)).tuples()]


async def resolve_conflict(core: Core, link_id: int, decision: Decision, actor: str) -> None:
    """Apply a staff decision to one conflict; raises AppointmentError when it no longer applies."""
    async with core.store.session() as s:
        link = await s.get(Link, link_id)
        if link is None or link.state != "conflict":
            raise AppointmentError("that conflict was already resolved")
        cal = await s.get(Calendar, link.calendar_id)
        appt = await s.get(Appointment, link.appointment_id)
        assert cal is not None and appt is not None
        conn = await s.get(Connection, cal.connection_id)
        assert conn is not None
    remote: tuple[datetime, datetime] | None = None
    if decision == "accept_calendar" and link.remote_id is not None:
        provider = open_provider(core, conn, cal)
        try:
            item = await provider.get(link.remote_id)
        finally:
            await provider.aclose()
        remote = (item.event.start, item.event.end)
    async with core.store.session() as s:
        # Locked, so two staff pressing at once resolve it once: the row on PostgreSQL, the database's
        # write lock on SQLite (taken before the read; SQLite takes it only at the first write otherwise).
        await hold_write_lock(s)
        link2 = await s.get(Link, link_id, with_for_update=True, populate_existing=True)
        appt2 = await s.get(Appointment, appt.id)
        if link2 is None or appt2 is None or link2.state != "conflict":
            raise AppointmentError("that conflict was already resolved")
        link2.state = "ok"
        await audit.record(s, actor=actor, action=f"sync.conflict.{decision}", practice_id=appt2.practice_id,
                           appointment_id=appt2.id, details={"calendar_id": cal.id, "link_id": link_id})
        # A resolved notice gives up its dedupe key: the same edit made again later (a CalDAV server
        # that derives etags from content gives it the same etag) is a new conflict with a card of its own.
        await s.execute(update(ConflictNotice).where(
            ConflictNotice.link_id == link_id, ConflictNotice.resolved_at.is_(None),
        ).values(resolved_at=core.clock(), resolved_by=actor[:200], decision=decision,
                 dedupe_key="resolved:" + cast(ConflictNotice.id, String)))
        if remote is not None and remote != (appt2.start, appt2.end):
            await reschedule(s, core.bus, appt2, remote[0], remote[1], actor, allow_overlap=True)
        else:
            await enqueue(s, [op_row(conn.id, cal.id, appt2.id, appt2.version, "update", core.clock(),
                                     key=f"{appt2.id}:{cal.id}:{appt2.version}:keep:{secrets.token_hex(6)}")])
