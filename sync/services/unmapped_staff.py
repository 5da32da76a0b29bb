"""Booking-platform staff nobody is mapped to yet, and mapping one from a card.

A booking for a staff member no practitioner is mapped to is kept, unassigned; admins get a card
listing those staff members (with the bookings waiting for each) and a practitioner picker. The
card names the staff member by its booking calendar, so submitting it maps that calendar's staff id
through the same identities as `staff map` (sync.services.staff.map_staff), which assigns the
waiting bookings and queues their mirror copies in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import ProviderError
from sync.integrations import registry
from sync.runtime.core import Core
from sync.services.practices import practitioner_choices
from sync.services.staff import StaffError, StaffMapping, list_mappings, map_staff
from sync.store.model import Appointment, Calendar, Connection, Practitioner

__all__ = [
    "MappedFromCard",
    "StaffOverview",
    "UnmappedStaff",
    "map_from_staff_card",
    "map_staff_calendar",
    "staff_overview",
    "unmapped_staff",
]

#: Staff members one card lists (Slack allows 50 blocks a message).
MAX_LISTED = 25


@dataclass(frozen=True, slots=True)
class UnmappedStaff:
    """One staff member of a booking platform with no practitioner, and the bookings waiting for one."""

    calendar_id: int
    integration: str
    title: str
    external_id: str
    name: str
    waiting: int


@dataclass(frozen=True, slots=True)
class MappedFromCard:
    mapping: StaffMapping
    #: Bookings that were waiting and are the practitioner's now.
    assigned: int


@dataclass(frozen=True, slots=True)
class StaffOverview:
    """What the staff card shows: the mappings, the staff nobody is mapped to, the practitioners to choose."""

    mappings: tuple[StaffMapping, ...]
    unmapped: tuple[UnmappedStaff, ...]
    #: (id, name) of the practice's active practitioners.
    practitioners: tuple[tuple[int, str], ...]


async def staff_overview(core: Core, practice_id: int) -> StaffOverview:
    """The staff card's facts, in one transaction."""
    async with core.store.session() as session:
        rows = await list_mappings(session, practice_id)
        waiting = await unmapped_staff(session, practice_id)
        people = await practitioner_choices(session, practice_id)
    return StaffOverview(tuple(rows), tuple(waiting), tuple(people))


async def map_from_staff_card(
    core: Core, practice_id: int, calendar_id: int, practitioner_id: int, *, actor: str
) -> MappedFromCard:
    """`map_staff_calendar` in a transaction of its own. Raises StaffError."""
    async with core.store.session() as session:
        return await map_staff_calendar(session, practice_id, calendar_id, practitioner_id, actor=actor)


def _booking_platforms() -> dict[str, str]:
    return {i.name: i.title for i in registry.integrations() if i.booking_source is not None}


async def unmapped_staff(session: AsyncSession, practice_id: int) -> list[UnmappedStaff]:
    """The practice's booking-platform staff without a practitioner, most bookings waiting first."""
    platforms = _booking_platforms()
    if not platforms:
        return []
    waiting = (select(Appointment.source_calendar_id, func.count(Appointment.id).label("n"))
               .where(Appointment.practitioner_id.is_(None), Appointment.status != "cancelled")
               .group_by(Appointment.source_calendar_id).subquery())
    rows = (await session.execute(
        select(Calendar.id, Connection.provider, Calendar.remote_id, Calendar.name, func.coalesce(waiting.c.n, 0))
        .join(Connection, Connection.id == Calendar.connection_id)
        .outerjoin(waiting, waiting.c.source_calendar_id == Calendar.id)
        .where(Connection.practice_id == practice_id, Connection.provider.in_(list(platforms)),
               Connection.status != "removing", Calendar.role == "source", Calendar.practitioner_id.is_(None))
        .order_by(func.coalesce(waiting.c.n, 0).desc(), Connection.provider, Calendar.name)
        .limit(MAX_LISTED)
    )).tuples()
    return [UnmappedStaff(int(cid), str(p), platforms[str(p)], str(r), str(n or r), int(c))
            for cid, p, r, n, c in rows]


async def map_staff_calendar(
    session: AsyncSession, practice_id: int, calendar_id: int, practitioner_id: int, *, actor: str
) -> MappedFromCard:
    """Map the staff member of booking calendar `calendar_id` to the practitioner (both of this practice)."""
    found = (await session.execute(
        select(Calendar, Connection).join(Connection, Connection.id == Calendar.connection_id)
        .where(Calendar.id == calendar_id, Connection.practice_id == practice_id))).first()
    if found is None:
        raise StaffError("that staff member is no longer there; run `staff` again")
    calendar, connection = found.tuple()
    try:
        if registry.get(connection.provider).booking_source is None:
            raise StaffError("that calendar is not a booking platform's staff member")
    except ProviderError:
        raise StaffError(f"the {connection.provider} integration is not loaded on this server") from None
    person = await session.get(Practitioner, practitioner_id)
    if person is None or person.practice_id != practice_id:
        raise StaffError("that practitioner is not in this practice; choose another")
    waiting = await session.scalar(select(func.count(Appointment.id)).where(
        Appointment.source_calendar_id == calendar.id, Appointment.practitioner_id.is_(None),
        Appointment.status != "cancelled")) or 0
    mapping = await map_staff(session, person, connection.provider, calendar.remote_id, actor=actor)
    return MappedFromCard(mapping, int(waiting))
