"""Appointment services used by the chat commands: look up, list a day, reschedule, cancel, mark.

Every change bumps the appointment's version, writes one audit entry naming the actor, and
emits one change event in the same transaction; the engine's subscriber turns that event into
outbox operations for the source and the mirrors, so nothing here talks to a remote.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BindParameter, ColumnElement, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.engine import series
from sync.runtime.events import AppointmentEvent, EventBus, EventKind
from sync.services.errors import Conflict, Invalid, NotFound
from sync.store import audit
from sync.store.database import hold_write_lock
from sync.store.model import Appointment, Practitioner

__all__ = [
    "ACTIVE_STATUSES",
    "AppointmentError",
    "AppointmentNotFound",
    "InvalidAppointmentInput",
    "SlotTaken",
    "StaleVersion",
    "between",
    "cancel",
    "find_overlaps",
    "get_by_ref",
    "get_for_change",
    "hold_schedule",
    "list_day",
    "mark",
    "parse_ref",
    "reschedule",
    "snapshot",
]

ACTIVE_STATUSES = ("confirmed", "tentative")
#: Visits that are over: attended, or the client did not come (from a follow-up or the booking platform).
OUTCOME_STATUSES = ("completed", "no_show")
#: ASCII digits only: \d also matches "١٠٤٢", which int() would read as 1042.
_REF = re.compile(r"^\s*A-?([0-9]{1,12})\s*$", re.IGNORECASE | re.ASCII)
_BARE_REF = re.compile(r"^\s*([0-9]{1,12})\s*$", re.ASCII)


class AppointmentError(Conflict):
    """The appointment's state refuses the change; the message says what went wrong and what to do."""


class AppointmentNotFound(NotFound):
    """No appointment with that id in the person's practice."""


class InvalidAppointmentInput(Invalid):
    """A malformed appointment id, time or outcome."""


class StaleVersion(AppointmentError):
    """The appointment changed since the user looked at it."""


class SlotTaken(AppointmentError):
    def __init__(self, message: str, conflicts: list[Appointment]) -> None:
        super().__init__(message)
        self.conflicts = conflicts


def parse_ref(ref: str) -> int:
    """'A-1042' (or 'a1042', '1042') -> 1042."""
    m = _REF.match(ref) or _BARE_REF.match(ref)
    if not m:
        raise InvalidAppointmentInput(f"{ref!r} is not an appointment id; ids look like A-1042")
    return int(m.group(1))


def snapshot(appt: Appointment) -> dict[str, Any]:
    return {
        "start": appt.start,
        "end": appt.end,
        "status": appt.status,
        "practitioner_id": appt.practitioner_id,
        "service": appt.service,
        "client_name": appt.client_name,
        "title": appt.title,
        "notes": appt.notes,
        "version": appt.version,
    }


def _diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [k for k in before if before[k] != after.get(k)]
    return {k: before[k] for k in keys}, {k: after[k] for k in keys}


async def get_by_ref(session: AsyncSession, practice_id: int, ref: str | int) -> Appointment:
    appt_id = ref if isinstance(ref, int) else parse_ref(ref)
    appt = await session.get(Appointment, appt_id)
    if appt is None or appt.practice_id != practice_id:
        raise AppointmentNotFound(f"there is no appointment A-{appt_id}; `today` lists the day's ids")
    return appt


async def get_for_change(session: AsyncSession, practice_id: int, ref: str | int) -> Appointment:
    """`get_by_ref` for a change: the appointment is locked until the transaction ends and read
    once the lock is held, so checks made on it (its version, its status) still hold at commit.
    A second change of it at the same moment waits, then reads what the first one left."""
    await hold_write_lock(session)
    appt_id = ref if isinstance(ref, int) else parse_ref(ref)
    appt = await session.get(Appointment, appt_id, with_for_update=True, populate_existing=True)
    if appt is None or appt.practice_id != practice_id:
        raise AppointmentNotFound(f"there is no appointment A-{appt_id}; `today` lists the day's ids")
    return appt


async def hold_schedule(session: AsyncSession, practitioner_id: int) -> None:
    """Hold one practitioner's schedule until the transaction ends, so a slot found free stays free
    until the booking in it commits (two people moving visits into one slot at once: one wins)."""
    await hold_write_lock(session)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(select(Practitioner.id).where(Practitioner.id == practitioner_id).with_for_update())


async def list_day(
    session: AsyncSession,
    practice_id: int,
    day: date,
    tz: str,
    practitioner_id: int | None = None,
    include_cancelled: bool = False,
    with_outcomes: bool = False,
) -> list[Appointment]:
    """Appointments on `day` in zone `tz`, in start order; a recurring series gives its occurrences
    that day (transient copies of the series row, see sync.engine.series). `with_outcomes` keeps
    visits that happened or were missed (completed, no-show: the staff agenda shows them)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time.min, zone)
    end = datetime.combine(day + timedelta(days=1), time.min, zone)
    statuses = None if include_cancelled else ACTIVE_STATUSES + (OUTCOME_STATUSES if with_outcomes else ())
    singles, series_rows = _day_selects(practitioner_id is not None, statuses)
    params = {"practice_id": practice_id, "practitioner_id": practitioner_id, "start": start, "end": end}
    rows = list((await session.scalars(singles, params)).all())
    rows += await series.occurrences_of(session, series_rows, params, start, end)
    return sorted(rows, key=lambda a: (a.start, a.id))


@functools.cache
def _day_selects(by_practitioner: bool, statuses: tuple[str, ...] | None
                 ) -> tuple[Select[Appointment], Select[Appointment]]:
    """`between`'s two statements for `list_day`, built once (with bound parameters practice_id,
    practitioner_id, start and end): an agenda runs them on every request."""
    start: BindParameter[Any] = bindparam("start")
    end: BindParameter[Any] = bindparam("end")
    where: list[ColumnElement[bool]] = [Appointment.practice_id == bindparam("practice_id")]
    if by_practitioner:
        where.append(Appointment.practitioner_id == bindparam("practitioner_id"))
    if statuses is not None:
        where.append(Appointment.status.in_(statuses))
    singles = select(Appointment).where(Appointment.start < end, Appointment.end > start, series.single(), *where)
    return singles, series.series_rows_select(start, end, *where)


async def find_overlaps(
    session: AsyncSession, practitioner_id: int, start: datetime, end: datetime, exclude_id: int | None = None
) -> list[Appointment]:
    """Active appointments of one practitioner overlapping [start, end), occurrences of series included."""
    where = [Appointment.practitioner_id == practitioner_id, Appointment.status.in_(ACTIVE_STATUSES)]
    if exclude_id is not None:
        where.append(Appointment.id != exclude_id)
    return await between(session, start, end, *where)


async def between(
    session: AsyncSession, start: datetime, end: datetime, *where: ColumnElement[bool]
) -> list[Appointment]:
    """Appointments matching `where` overlapping [start, end), in start order; a recurring series
    gives its visits there (transient copies of the series row, see sync.engine.series)."""
    stmt = select(Appointment).where(Appointment.start < end, Appointment.end > start, series.single(), *where)
    rows = list((await session.scalars(stmt)).all())
    rows += await series.occurrences_between(session, start, end, *where)
    return sorted(rows, key=lambda a: (a.start, a.id))


async def _commit_change(
    session: AsyncSession,
    bus: EventBus,
    appt: Appointment,
    before: dict[str, Any],
    kind: EventKind,
    actor: str,
    details: dict[str, Any] | None = None,
) -> None:
    appt.version += 1
    await session.flush()
    after = snapshot(appt)
    b, a = _diff(before, after)
    await audit.record(
        session, actor=actor, action=f"appointment.{kind}", practice_id=appt.practice_id,
        appointment_id=appt.id, before=b, after=a, details=details,
    )
    await bus.emit(
        session,
        AppointmentEvent(
            kind=kind, appointment_id=appt.id, version=appt.version, practice_id=appt.practice_id,
            practitioner_id=appt.practitioner_id, actor=actor, before=b, after=a,
        ),
    )


def _check_version(appt: Appointment, expected_version: int | None) -> None:
    if expected_version is not None and appt.version != expected_version:
        raise StaleVersion(f"A-{appt.id} changed since this card was shown; here is the current version")


async def reschedule(
    session: AsyncSession,
    bus: EventBus,
    appt: Appointment,
    start: datetime,
    end: datetime | None,
    actor: str,
    *,
    practitioner_id: int | None = None,
    expected_version: int | None = None,
    allow_overlap: bool = False,
) -> Appointment:
    """Move an appointment (keeping its length unless `end` is given), refusing double bookings."""
    _check_version(appt, expected_version)
    if appt.status not in ACTIVE_STATUSES:
        raise AppointmentError(f"A-{appt.id} is {appt.status.replace('_', ' ')} and cannot be rescheduled")
    if start.tzinfo is None:
        raise InvalidAppointmentInput("the new time needs a time zone")
    end = end or start + (appt.end - appt.start)
    if end <= start:
        raise InvalidAppointmentInput("the appointment must end after it starts")
    target = practitioner_id or appt.practitioner_id
    if target is not None and not allow_overlap:
        overlaps = await find_overlaps(session, target, start, end, exclude_id=appt.id)
        if overlaps:
            refs = ", ".join(f"A-{o.id}" for o in overlaps)
            raise SlotTaken(f"that slot is taken ({refs}); pick another time", overlaps)
    if start == appt.start and end == appt.end and target == appt.practitioner_id:
        return appt
    before = snapshot(appt)
    appt.start, appt.end, appt.practitioner_id = start, end, target
    await _commit_change(session, bus, appt, before, "rescheduled", actor)
    return appt


async def cancel(
    session: AsyncSession,
    bus: EventBus,
    appt: Appointment,
    reason: str,
    actor: str,
    *,
    expected_version: int | None = None,
) -> Appointment:
    """Cancel an appointment; cancelling a cancelled one is a no-op, not an error."""
    _check_version(appt, expected_version)
    if appt.status == "cancelled":
        return appt
    if appt.status not in ACTIVE_STATUSES:
        raise AppointmentError(f"A-{appt.id} is {appt.status.replace('_', ' ')} and cannot be cancelled")
    before = snapshot(appt)
    appt.status = "cancelled"
    await _commit_change(session, bus, appt, before, "cancelled", actor, details={"cancel_reason": reason[:500]})
    return appt


async def mark(session: AsyncSession, bus: EventBus, appt: Appointment, status: str, actor: str) -> Appointment:
    """Record the outcome of a visit: completed (attended) or no_show."""
    if status not in ("completed", "no_show"):
        raise InvalidAppointmentInput("an appointment can be marked completed or no_show")
    if appt.status == status:
        return appt
    if appt.status == "cancelled":
        raise AppointmentError(f"A-{appt.id} was cancelled")
    before = snapshot(appt)
    appt.status = status
    kind: EventKind = "completed" if status == "completed" else "no_show"
    await _commit_change(session, bus, appt, before, kind, actor)
    return appt
