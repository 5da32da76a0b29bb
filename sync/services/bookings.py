"""Booking-platform rules that chat must know before it changes an appointment.

A platform without a reschedule API (Calendly) cannot take a move made in chat; moving the
appointment in clinicbot anyway would leave it at a time the platform never heard of. So chat asks
first, and the platform's booking source says why, in its own words (Calendly names the client's
own reschedule link to send them). Asking reads the booking; it never writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import ConnectionInfo, ProviderError, Refused
from sync.integrations import registry
from sync.integrations.providers import connection_info
from sync.runtime.core import Core
from sync.store.model import Appointment, Calendar, Connection, Link

__all__ = ["BookingRef", "booking_of", "refusal_of", "reschedule_refusal"]


@dataclass(frozen=True, slots=True)
class BookingRef:
    """What asking an appointment's booking platform needs, read inside a transaction (see `booking_of`)."""

    provider: str
    info: ConnectionInfo
    remote_id: str | None
    start: datetime
    end: datetime


async def booking_of(session: AsyncSession, core: Core, practice_id: int, appt: Appointment) -> BookingRef | None:
    """The booking behind `appt` (a row of the practice in `session`), or None when it has no source."""
    if appt.source_calendar_id is None or appt.practice_id != practice_id:
        return None
    row = (await session.execute(
        select(Connection, Link)
        .select_from(Calendar)
        .join(Connection, Connection.id == Calendar.connection_id)
        .outerjoin(Link, (Link.appointment_id == appt.id) & (Link.calendar_id == Calendar.id))
        .where(Calendar.id == appt.source_calendar_id)
    )).first()
    if row is None:
        return None
    conn, link = row.tuple()
    return BookingRef(conn.provider, connection_info(conn, core), link.remote_id if link is not None else None,
                      appt.start, appt.end)


async def refusal_of(core: Core, booking: BookingRef | None) -> str | None:
    """Why `booking`'s platform cannot take a reschedule from chat; None when it can, or there is none."""
    if booking is None:
        return None
    try:
        integration = registry.get(booking.provider)
    except Refused:
        return None
    if integration.booking_source is None or booking.remote_id is None:
        return None
    source = integration.booking_source(booking.info, core.settings)
    try:
        if source.capabilities.reschedule:
            return None
        try:
            await source.reschedule(booking.remote_id, booking.start, booking.end, None)
        except Refused as exc:
            return str(exc)
        except ProviderError:
            return f"{integration.title} cannot take a reschedule from clinicbot"
        return None
    finally:
        await source.aclose()


async def reschedule_refusal(core: Core, practice_id: int, appointment_id: int) -> str | None:
    """Why the appointment's booking platform cannot take a reschedule from chat; None when it can, or it is none."""
    async with core.store.session() as s:
        appt = await s.get(Appointment, appointment_id)
        booking = await booking_of(s, core, practice_id, appt) if appt is not None else None
    return await refusal_of(core, booking)
