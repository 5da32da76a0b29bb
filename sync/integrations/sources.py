"""Whether clinicbot can write back to where an appointment was booked.

An ICS feed is published by a booking system and only read: a change made in chat to one of its
appointments could not reach the feed, and the feed's next sync would silently undo it. Today
read-only is decided by the provider; `is_read_only` is the one place that says so, so a stored
per-connection flag can replace it later without touching the callers.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.store.model import Appointment, Calendar, Connection

__all__ = ["is_read_only", "read_only_calendars", "refuse_read_only"]


def is_read_only(conn: Connection) -> bool:
    """Whether this connection's calendars can only be read (an ICS feed)."""
    return conn.provider == "ics"


async def read_only_calendars(session: AsyncSession, calendar_ids: Iterable[int | None]) -> set[int]:
    """The calendars among `calendar_ids` that belong to a read-only connection."""
    ids = {i for i in calendar_ids if i is not None}
    if not ids:
        return set()
    rows = await session.execute(
        select(Calendar.id, Connection).join(Connection, Connection.id == Calendar.connection_id).where(
            Calendar.id.in_(ids)
        )
    )
    return {int(cal_id) for cal_id, conn in rows.tuples() if is_read_only(conn)}


async def refuse_read_only(session: AsyncSession, appt: Appointment) -> str | None:
    """Why a change from chat to this appointment is refused (its source is read-only), or None."""
    if appt.source_calendar_id is None or not await read_only_calendars(session, [appt.source_calendar_id]):
        return None
    return (
        f"{appt.ref} comes from a read-only calendar feed, so clinicbot cannot change it there and the "
        "feed would undo a change made here. Move or cancel it in the booking system that publishes the feed"
    )
