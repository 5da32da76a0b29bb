"""Whether clinicbot can write back to where an appointment was booked.

A calendar is read-only when its integration says so (an ICS feed is published by a booking system
and only read); the flag is stored on the calendar when it is discovered. A change made in chat to
one of its appointments could not reach it, and its next sync would silently undo the change, so
chat refuses such changes with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.store.model import Appointment, Calendar

__all__ = ["read_only_calendars", "read_only_refusal", "refuse_read_only"]


async def read_only_calendars(session: AsyncSession, calendar_ids: Iterable[int | None]) -> set[int]:
    """The calendars among `calendar_ids` that clinicbot can only read."""
    ids = {i for i in calendar_ids if i is not None}
    if not ids:
        return set()
    rows = await session.scalars(_READ_ONLY, {"ids": list(ids)})
    return {int(cal_id) for cal_id in rows}


#: `read_only_calendars`' statement, built once (every agenda and details card runs it).
_READ_ONLY = select(Calendar.id).where(Calendar.id.in_(bindparam("ids", expanding=True)), Calendar.read_only.is_(True))


async def refuse_read_only(session: AsyncSession, appt: Appointment) -> str | None:
    """Why a change from chat to this appointment is refused (its source is read-only), or None."""
    if appt.source_calendar_id is None or not await read_only_calendars(session, [appt.source_calendar_id]):
        return None
    return read_only_refusal(appt.ref)


def read_only_refusal(ref: str) -> str:
    """Why appointment `ref`, from a read-only source, cannot be changed from chat."""
    return (
        f"{ref} comes from a read-only calendar feed, so clinicbot cannot change it there and the "
        "feed would undo a change made here. Move or cancel it in the booking system that publishes the feed"
    )
