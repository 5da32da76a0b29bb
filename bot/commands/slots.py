"""Is a slot free, and which are the next free ones, for one practitioner.

Uses the sync engine's free/busy (`sync.services.availability.check_slot` and `next_free_slots`:
appointments plus every connected calendar's busy times) when it is installed; until then it falls
back on clinicbot's own appointments (`sync.services.appointments.find_overlaps`), searching suggestions in
the practice's working hours (settings working_start/working_end/working_days, default 08:00-18:00
Monday to Friday) in steps of 15 minutes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.services.appointments import find_overlaps
from sync.runtime.core import Core
from sync.store.model import Practice

__all__ = ["Busy", "busy_between", "is_free", "next_free", "practitioners_of"]

STEP = timedelta(minutes=15)
HORIZON_DAYS = 14


@dataclass(frozen=True, slots=True)
class Busy:
    start: datetime
    end: datetime
    label: str  # "A-12" or the calendar's name; never patient data


def _engine() -> ModuleType | None:
    try:
        return importlib.import_module("sync.services.availability")
    except ImportError:
        return None


async def busy_between(
    core: Core,
    session: AsyncSession,
    practitioner_id: int,
    start: datetime,
    end: datetime,
    exclude_id: int | None = None,
) -> list[Busy]:
    """Busy intervals of the practitioner overlapping [start, end), from clinicbot's appointments."""
    rows = await find_overlaps(session, practitioner_id, start, end, exclude_id=exclude_id)
    return [Busy(a.start, a.end, a.ref) for a in rows]


async def is_free(
    core: Core,
    session: AsyncSession,
    practitioner_id: int,
    start: datetime,
    end: datetime,
    exclude_id: int | None = None,
) -> list[Busy]:
    """The busy intervals clashing with [start, end); empty means free."""
    engine = _engine()
    if engine is not None:
        check: Any = await engine.check_slot(core, practitioner_id, start, end, exclude_id=exclude_id)
        if check.free:
            return []
        clashes = [Busy(start, end, f"A-{i}") for i in check.appointment_ids]
        clashes += [Busy(b.start, b.end, "busy in a connected calendar") for b in check.busy]
        return clashes
    return await busy_between(core, session, practitioner_id, start, end, exclude_id)


def _hours(practice: Practice) -> tuple[time, time, set[int]]:
    """Working hours and days: practice settings working_start/working_end/working_days
    (the engine's keys), default 08:00-18:00 Monday to Friday."""
    settings = practice.settings or {}
    try:
        opens = time.fromisoformat(str(settings.get("working_start") or "08:00"))
        closes = time.fromisoformat(str(settings.get("working_end") or "18:00"))
    except ValueError:
        opens, closes = time(8), time(18)
    days = settings.get("working_days")
    working = {int(d) for d in days} if isinstance(days, list) else {0, 1, 2, 3, 4}
    return opens, closes, working


async def next_free(
    core: Core,
    session: AsyncSession,
    practice: Practice,
    practitioner_id: int,
    after: datetime,
    duration: timedelta,
    count: int = 3,
    exclude_id: int | None = None,
) -> list[datetime]:
    """The next `count` free starts at or after `after`, inside working hours, in the practice zone."""
    engine = _engine()
    if engine is not None:
        found_by_engine: list[datetime] = await engine.next_free_slots(
            core, practitioner_id, after, duration, count, exclude_id=exclude_id
        )
        return found_by_engine
    zone = ZoneInfo(practice.timezone)
    horizon = after + timedelta(days=HORIZON_DAYS)
    busy = sorted(await busy_between(core, session, practitioner_id, after, horizon, exclude_id), key=lambda b: b.start)
    open_at, close_at, working = _hours(practice)
    local = after.astimezone(zone)
    minutes = local.hour * 60 + local.minute
    rounded = -(-minutes // 15) * 15  # up to the next quarter hour
    cursor = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(minutes=rounded)
    found: list[datetime] = []
    while cursor < horizon and len(found) < count:
        day_open = datetime.combine(cursor.date(), open_at, zone)
        day_close = datetime.combine(cursor.date(), close_at, zone)
        if cursor < day_open:
            cursor = day_open
        if cursor + duration > day_close or cursor.weekday() not in working:
            cursor = datetime.combine(cursor.date() + timedelta(days=1), open_at, zone)
            continue
        end = cursor + duration
        clash = next((b for b in busy if b.start < end and b.end > cursor), None)
        if clash is None:
            found.append(cursor)
            cursor = cursor + max(duration, STEP)
        else:
            cursor = _ceil_step(clash.end.astimezone(zone), cursor)
    return found


def _ceil_step(moment: datetime, floor: datetime) -> datetime:
    base = max(moment, floor + STEP)
    extra = (base.minute % 15) or 0
    if extra or base.second or base.microsecond:
        base = base.replace(second=0, microsecond=0) + timedelta(minutes=15 - extra if extra else 0)
    return base


async def practitioners_of(session: AsyncSession, practice_id: int) -> list[tuple[int, str]]:
    """(id, name) of the practice's active practitioners, for form choices."""
    from sync.store.model import Practitioner

    rows = await session.execute(
        select(Practitioner.id, Practitioner.name)
        .where(Practitioner.practice_id == practice_id, Practitioner.active.is_(True))
        .order_by(Practitioner.name)
    )
    return [(int(r[0]), str(r[1])) for r in rows]
