"""Booking-platform rules that chat must know before it changes an appointment.

A platform without a reschedule API (Calendly) cannot take a move made in chat; moving the
appointment in clinicbot anyway would leave it at a time the platform never heard of. So chat asks
first, and the platform's booking source says why, in its own words (Calendly names the client's
own reschedule link to send them). Asking reads the booking; it never writes.
"""

from __future__ import annotations

from sqlalchemy import select

from sync.contract import ProviderError, Refused
from sync.integrations import registry
from sync.integrations.providers import connection_info
from sync.runtime.core import Core
from sync.store.model import Appointment, Calendar, Connection, Link

__all__ = ["reschedule_refusal"]


async def reschedule_refusal(core: Core, practice_id: int, appointment_id: int) -> str | None:
    """Why the appointment's booking platform cannot take a reschedule from chat; None when it can, or it is none."""
    async with core.store.session() as s:
        row = (await s.execute(
            select(Appointment, Connection, Link)
            .join(Calendar, Calendar.id == Appointment.source_calendar_id)
            .join(Connection, Connection.id == Calendar.connection_id)
            .outerjoin(Link, (Link.appointment_id == Appointment.id) & (Link.calendar_id == Calendar.id))
            .where(Appointment.id == appointment_id, Appointment.practice_id == practice_id)
        )).first()
        if row is None:
            return None
        appt, conn, link = row.tuple()
        info = connection_info(conn, core)
    try:
        integration = registry.get(conn.provider)
    except Refused:
        return None
    if integration.booking_source is None or link is None or link.remote_id is None:
        return None
    source = integration.booking_source(info, core.settings)
    try:
        if source.capabilities.reschedule:
            return None
        try:
            await source.reschedule(link.remote_id, appt.start, appt.end, None)
        except Refused as exc:
            return str(exc)
        except ProviderError:
            return f"{integration.title} cannot take a reschedule from clinicbot"
        return None
    finally:
        await source.aclose()
