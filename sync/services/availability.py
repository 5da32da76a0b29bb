"""Conflict checking for chat: a practitioner's busy time and the next free slots.

Busy time merges the canonical appointments with the free/busy of every calendar linked to the
practitioner (busy and work calendars, and mirrors). clinicbot's own mirror copies are already
appointments, so a calendar whose copies are ours adds nothing twice: intervals are merged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import BusyInterval, ProviderError
from sync.contract.items import Window
from sync.integrations.providers import open_provider
from sync.runtime.core import Core
from sync.services.appointments import ACTIVE_STATUSES, between
from sync.store.model import Appointment, Calendar, Connection, Practice, Practitioner, ShiftRow

__all__ = [
    "SlotCheck",
    "appointments_busy",
    "busy_calendars",
    "busy_for",
    "calendars_busy",
    "check_slot",
    "next_free_slots",
]

log = logging.getLogger("clinicbot.availability")


@dataclass(frozen=True, slots=True)
class SlotCheck:
    free: bool
    #: Overlapping canonical appointments (ids) and calendar busy blocks.
    appointment_ids: tuple[int, ...] = ()
    busy: tuple[BusyInterval, ...] = ()
    #: Calendars that could not be asked (their busy time is unknown).
    unknown_calendars: tuple[int, ...] = ()


async def appointments_busy(session: AsyncSession, practitioner_id: int, window: Window,
                            exclude_id: int | None) -> list[tuple[int, BusyInterval]]:
    """The practitioner's own bookings that hold time in `window` (active, not transparent), in `session`."""
    where = [Appointment.practitioner_id == practitioner_id, Appointment.status.in_(ACTIVE_STATUSES),
             Appointment.transparent.is_(False)]
    if exclude_id is not None:
        where.append(Appointment.id != exclude_id)
    found = await between(session, window.start, window.end, *where)
    return [(a.id, BusyInterval(a.start, a.end)) for a in found]


async def _appointment_busy(core: Core, practitioner_id: int, window: Window,
                            exclude_id: int | None) -> list[tuple[int, BusyInterval]]:
    async with core.store.session() as s:
        return await appointments_busy(s, practitioner_id, window, exclude_id)


async def busy_calendars(session: AsyncSession, practitioner_id: int) -> list[tuple[Calendar, Connection]]:
    """The calendars whose free/busy count for the practitioner (busy, mirror and work calendars of
    active connections, theirs or their connection's), in `session`."""
    return list((await session.execute(
        select(Calendar, Connection).join(Connection, Connection.id == Calendar.connection_id).where(
            Calendar.role.in_(("busy", "mirror", "work")), Calendar.sync_enabled.is_(True),
            Connection.status == "active",
            or_(Calendar.practitioner_id == practitioner_id,
                (Calendar.practitioner_id.is_(None)) & (Connection.practitioner_id == practitioner_id)),
        ))).tuples().all())


async def calendars_busy(core: Core, calendars: Iterable[tuple[Calendar, Connection]], window: Window
                         ) -> tuple[list[BusyInterval], list[int]]:
    """The busy time of `calendars` in `window`, asked over the network (call it holding no lock), and
    the calendars that could not be asked."""
    busy: list[BusyInterval] = []
    unknown: list[int] = []
    for cal, conn in calendars:
        provider = open_provider(core, conn, cal)
        try:
            busy.extend(await provider.free_busy(window))
        except ProviderError as exc:
            log.warning("free/busy unavailable", extra={"calendar_id": cal.id, "error": type(exc).__name__})
            unknown.append(cal.id)
        finally:
            await provider.aclose()
    return busy, unknown


async def _calendar_busy(core: Core, practitioner_id: int, window: Window) -> tuple[list[BusyInterval], list[int]]:
    async with core.store.session() as s:
        rows = await busy_calendars(s, practitioner_id)
    return await calendars_busy(core, rows, window)


def _merge(intervals: list[BusyInterval]) -> list[BusyInterval]:
    out: list[BusyInterval] = []
    for iv in sorted(intervals, key=lambda b: b.start):
        if out and iv.start <= out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = BusyInterval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


async def busy_for(core: Core, practitioner_id: int, window: Window, *, exclude_id: int | None = None
                   ) -> list[BusyInterval]:
    """Merged busy intervals of one practitioner in `window`."""
    appts = await _appointment_busy(core, practitioner_id, window, exclude_id)
    cal_busy, _ = await _calendar_busy(core, practitioner_id, window)
    return _merge([b for _, b in appts] + cal_busy)


async def check_slot(core: Core, practitioner_id: int, start: datetime, end: datetime, *,
                     exclude_id: int | None = None) -> SlotCheck:
    """Is [start, end) free for the practitioner? Names what overlaps when it is not.

    `exclude_id` leaves out the appointment being moved (and so its own mirror copies).
    """
    window = Window(start, end)
    appts = await _appointment_busy(core, practitioner_id, window, exclude_id)
    cal_busy, unknown = await _calendar_busy(core, practitioner_id, window)
    if exclude_id is not None:
        async with core.store.session() as s:
            own = await s.get(Appointment, exclude_id)
        if own is not None:  # the appointment's own copies on mirrors are not a conflict
            cal_busy = [b for b in cal_busy if (b.start, b.end) != (own.start, own.end)]
    overlapping = tuple(b for b in cal_busy if b.start < end and b.end > start)
    return SlotCheck(not appts and not overlapping, tuple(i for i, _ in appts), overlapping, tuple(unknown))


def _hours(settings: dict[str, object]) -> tuple[time, time, set[int]]:
    def parse(value: object, default: time) -> time:
        try:
            return time.fromisoformat(str(value)) if value else default
        except ValueError:
            return default
    days = settings.get("working_days")
    working = {int(d) for d in days} if isinstance(days, list) else {0, 1, 2, 3, 4}
    return parse(settings.get("working_start"), time(8)), parse(settings.get("working_end"), time(18)), working


async def _shift_hours(core: Core, practitioner_id: int, window: Window) -> list[BusyInterval]:
    """The practitioner's published shifts overlapping `window`, merged, earliest first."""
    async with core.store.session() as s:
        rows = (await s.execute(select(ShiftRow.starts_at, ShiftRow.ends_at).where(
            ShiftRow.practitioner_id == practitioner_id, ShiftRow.live.is_(True),
            ShiftRow.starts_at < window.end, ShiftRow.ends_at > window.start,
        ).order_by(ShiftRow.starts_at))).all()
    return _merge([BusyInterval(start, end) for start, end in rows])


async def next_free_slots(core: Core, practitioner_id: int, after: datetime, duration: timedelta, count: int = 3,
                          *, step: timedelta = timedelta(minutes=15), horizon_days: int = 14,
                          exclude_id: int | None = None) -> list[datetime]:
    """The next `count` free starts of length `duration` within working hours (practice settings
    working_start/working_end/working_days, default 08:00-18:00 Mon-Fri) in the practitioner's zone.

    A practitioner with published shifts in the horizon works inside them instead: slots are offered
    only where a whole visit fits inside one of their shifts."""
    async with core.store.session() as s:
        pr = await s.get(Practitioner, practitioner_id)
        if pr is None:
            raise LookupError(f"there is no practitioner {practitioner_id}")
        practice = await s.get(Practice, pr.practice_id)
    zone = ZoneInfo(pr.timezone or "UTC")
    day_start, day_end, working = _hours(dict(practice.settings or {}) if practice else {})
    window = Window(after, after + timedelta(days=horizon_days))
    busy = _merge([b for _, b in await _appointment_busy(core, practitioner_id, window, exclude_id)]
                  + (await _calendar_busy(core, practitioner_id, window))[0])
    found: list[datetime] = []
    shifts = await _shift_hours(core, practitioner_id, window)
    if shifts:
        # A practitioner with published shifts works inside them: slots come from the shifts only.
        for shift in shifts:
            cursor = max(shift.start, after)
            if cursor > shift.start:  # round up to the step from the shift's start
                cursor = shift.start + step * -(-(cursor - shift.start) // step)
            while cursor + duration <= shift.end and len(found) < count:
                end = cursor + duration
                clash = next((b for b in busy if b.start < end and b.end > cursor), None)
                if clash is None:
                    found.append(cursor)
                    cursor = end
                else:
                    cursor = max(cursor + step, clash.end)
        return found
    local = after.astimezone(zone)
    day = local.date()
    while len(found) < count and day <= (after + timedelta(days=horizon_days)).astimezone(zone).date():
        if day.weekday() in working:
            cursor = datetime.combine(day, day_start, zone)
            close = datetime.combine(day, day_end, zone)
            # round up to the step so slots start at tidy times
            if cursor < after:
                elapsed = (after - cursor) // step
                cursor = cursor + step * (elapsed + (1 if cursor + step * elapsed < after else 0))
            while cursor + duration <= close and len(found) < count:
                end = cursor + duration
                clash = next((b for b in busy if b.start < end and b.end > cursor), None)
                if clash is None:
                    found.append(cursor)
                    cursor = end
                else:
                    cursor = max(cursor + step, clash.end)
        day += timedelta(days=1)
    return found
