"""Free slots across practitioners and locations, for chat's `slots Tue afternoon reiki at Northside`.

Who is asked: the practitioner named, else the practice's active practitioners who are not opted
out, narrowed to those booked for that service (in the 90 days either side) and to those booked at
that location (likewise), each narrowing skipped when it would leave nobody, and said so. How long:
the typical (median) length of that service's appointments, else 60 minutes. When: within the part
of the day asked for, inside the practice's working hours, free in clinicbot and in every calendar
the practitioner connected (sync.services.availability).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.core import Core
from sync.services.availability import next_free_slots
from sync.services.errors import NotFound
from sync.services.locations import find_location
from sync.services.practices import find_practitioner
from sync.store.model import Appointment, Practice, Practitioner

__all__ = ["DAY_PARTS", "DEFAULT_MINUTES", "PractitionerSlots", "SlotSearch", "find_slots", "practice_today"]

#: Parts of a day as people say them (local wall-clock hours).
DAY_PARTS: dict[str, tuple[time, time]] = {
    "morning": (time(0), time(12)),
    "afternoon": (time(12), time(17)),
    "evening": (time(17), time(23, 59)),
}
DEFAULT_MINUTES = 60
LOOK = timedelta(days=90)
PER_PRACTITIONER = 3


@dataclass(frozen=True, slots=True)
class PractitionerSlots:
    name: str
    starts: tuple[datetime, ...]


@dataclass(frozen=True, slots=True)
class SlotSearch:
    day: date
    timezone: str
    minutes: int
    location: str | None
    found: tuple[PractitionerSlots, ...]
    #: What the search could not narrow by ("nobody has been booked at Northside yet").
    notes: tuple[str, ...] = ()


async def _booked(session: AsyncSession, ids: list[int], around: datetime, **where: object) -> set[int]:
    stmt = select(Appointment.practitioner_id).where(
        Appointment.practitioner_id.in_(ids), Appointment.status != "cancelled",
        Appointment.start >= around - LOOK, Appointment.start <= around + LOOK)
    if "service" in where:
        stmt = stmt.where(func.lower(Appointment.service).contains(str(where["service"]).lower()))
    if "location_id" in where:
        stmt = stmt.where(Appointment.location_id == where["location_id"])
    return {int(i) for i in (await session.scalars(stmt.distinct())).all() if i is not None}


async def _minutes(session: AsyncSession, practice_id: int, service: str, around: datetime) -> int:
    rows = (await session.execute(
        select(Appointment.start, Appointment.end).where(
            Appointment.practice_id == practice_id, Appointment.status != "cancelled",
            func.lower(Appointment.service).contains(service.lower()),
            Appointment.start >= around - LOOK, Appointment.start <= around + LOOK)
        .limit(500))).all()
    lengths = [int((end - start).total_seconds() // 60) for start, end in rows if end > start]
    return int(statistics.median(lengths)) if lengths else DEFAULT_MINUTES


async def practice_today(core: Core, practice_id: int) -> date:
    """Today's date where the practice is."""
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        zone = ZoneInfo(practice.timezone if practice is not None else "UTC")
    return core.clock().astimezone(zone).date()


async def find_slots(
    core: Core, practice_id: int, day: date, *, part: str | None = None, service: str | None = None,
    practitioner: str | None = None, location: str | None = None,
) -> SlotSearch:
    """Up to three free starts per practitioner on `day` (see the module doc); `practitioner` is a
    handle, name or id."""
    notes: list[str] = []
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        if practice is None:
            raise NotFound("that practice no longer exists")
        practitioner_id = None
        if practitioner is not None:
            named = await find_practitioner(s, practice_id, practitioner)
            if named is None:
                raise NotFound(f"there is no practitioner @{practitioner.lstrip('@')}; `status` lists them")
            practitioner_id = named.id
        zone = ZoneInfo(practice.timezone)
        noon = datetime.combine(day, time(12), zone)
        place = await find_location(s, practice_id, location) if location else None
        query = select(Practitioner).where(Practitioner.practice_id == practice_id, Practitioner.active.is_(True),
                                           Practitioner.opted_out.is_(False)).order_by(Practitioner.name)
        people = list((await s.scalars(query)).all())
        if practitioner_id is not None:
            people = [p for p in people if p.id == practitioner_id]
            if not people:
                raise NotFound("that practitioner is not taking bookings (inactive or opted out)")
        ids = [p.id for p in people]
        if service and practitioner_id is None and ids:
            doing = await _booked(s, ids, noon, service=service)
            if doing:
                ids = [i for i in ids if i in doing]
            else:
                notes.append(f"nobody has been booked for {service!r} lately, so everyone is shown")
        if place is not None and practitioner_id is None and ids:
            there = await _booked(s, ids, noon, location_id=place.id)
            if there:
                ids = [i for i in ids if i in there]
            else:
                notes.append(f"nobody has been booked at {place.name} lately, so everyone is shown")
        minutes = await _minutes(s, practice_id, service, noon) if service else DEFAULT_MINUTES
        names = {p.id: p.name for p in people}
    start_at, end_at = DAY_PARTS.get(part or "", (time(0), time(23, 59)))
    opens = max(datetime.combine(day, start_at, zone), core.clock())
    closes = datetime.combine(day, end_at, zone)
    found: list[PractitionerSlots] = []
    for pid in ids:
        if opens >= closes:
            break
        starts = await next_free_slots(core, pid, opens, timedelta(minutes=minutes), count=PER_PRACTITIONER * 4,
                                       horizon_days=1)
        fitting = tuple(t for t in starts if t + timedelta(minutes=minutes) <= closes
                        and t.astimezone(zone).date() == day)[:PER_PRACTITIONER]
        if fitting:
            found.append(PractitionerSlots(names[pid], fitting))
    return SlotSearch(day, practice.timezone, minutes, place.name if place else None, tuple(found), tuple(notes))
