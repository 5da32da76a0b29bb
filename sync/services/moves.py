"""Moving an appointment (a reschedule from chat, a card or any front end): the slot check, the lock
order, the write and the retry, in one place.

The free/busy check asks connected calendars over the network, so it runs before any lock is held
(a provider refreshing its sign-in writes to the database, which on SQLite would wait for our lock).
Then the practitioner's schedule and the appointment are locked, in that order, and
`appointments.reschedule` checks clinicbot's own bookings and the card's version again before it
writes. A slot taken in between (someone else's move committed first) ends that transaction
unchanged, and the whole check runs once more, finding the clash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sync.engine.series import refuse_change
from sync.integrations.sources import refuse_read_only
from sync.runtime.core import Core
from sync.services import appointments, availability
from sync.services.errors import Conflict, Invalid
from sync.store.model import Appointment, Practitioner

__all__ = [
    "AppointmentFacts",
    "Cancelled",
    "Moved",
    "SlotLost",
    "TimeRefused",
    "UnknownPractitioner",
    "cancel",
    "move",
]

#: A start this far in the past still counts as now (the person typed "now" a moment ago).
GRACE = timedelta(minutes=1)
ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class AppointmentFacts:
    """What a front end needs to decide whether a person may change an appointment."""

    id: int
    ref: str
    practice_id: int
    practitioner_id: int | None
    status: str
    version: int


@dataclass(frozen=True, slots=True)
class Moved:
    appointment_id: int
    ref: str
    before: datetime
    start: datetime
    end: datetime
    practitioner_id: int | None
    version: int


@dataclass(frozen=True, slots=True)
class Cancelled:
    appointment_id: int
    ref: str
    #: The status before: "cancelled" when it was cancelled already (nothing changed).
    was: str
    version: int


class TimeRefused(Conflict):
    """The new time cannot be booked: it has passed or it is taken. `problem` completes a sentence
    about the time ("is taken (A-12)"); free slots are best searched from `suggest_after`."""

    def __init__(self, problem: str, suggest_after: datetime, clashes: tuple[str, ...] = ()) -> None:
        super().__init__(f"that time {problem}")
        self.problem = problem
        self.suggest_after = suggest_after
        self.clashes = clashes


class SlotLost(Conflict):
    """The slot was taken by another change on every attempt."""


class UnknownPractitioner(Invalid):
    """The practitioner to give the appointment to is not in the practice."""


Guard = Callable[[AppointmentFacts], None]


def facts(appt: Appointment) -> AppointmentFacts:
    return AppointmentFacts(appt.id, appt.ref, appt.practice_id, appt.practitioner_id, appt.status, appt.version)


async def move(
    core: Core,
    practice_id: int,
    appointment_id: int,
    start: datetime,
    *,
    actor: str,
    practitioner_id: int | None = None,
    expected_version: int | None = None,
    guard: Guard | None = None,
) -> Moved:
    """Move one appointment to `start` (keeping its length), optionally to another practitioner.

    `guard` is called with the appointment's facts before anything is checked or locked, and raises
    when the person may not change it. Raises TimeRefused (past or taken), SlotLost (taken twice
    by others meanwhile), StaleVersion, AppointmentNotFound, UnknownPractitioner or
    AppointmentError (a series, a cancelled visit).
    """
    for _ in range(ATTEMPTS):
        async with core.store.session() as s:
            appt = await appointments.get_by_ref(s, practice_id, appointment_id)
            if guard is not None:
                guard(facts(appt))
            why = refuse_change(appt) or await refuse_read_only(s, appt)
            if why is not None:
                raise appointments.AppointmentError(why)
            if practitioner_id is not None and practitioner_id != appt.practitioner_id:
                other = await s.get(Practitioner, practitioner_id)
                if other is None or other.practice_id != practice_id:
                    raise UnknownPractitioner("that practitioner is not in this practice")
            duration = appt.end - appt.start
            target = practitioner_id or appt.practitioner_id
        now = core.clock()
        if start < now - GRACE:
            raise TimeRefused("has already passed; pick a later time", now)
        end = start + duration
        if target is not None:
            check = await availability.check_slot(core, target, start, end, exclude_id=appointment_id)
            if not check.free:
                labels = tuple(sorted({f"A-{i}" for i in check.appointment_ids}
                                      | ({"busy in a connected calendar"} if check.busy else set())))
                raise TimeRefused(f"is taken ({', '.join(labels)})", start, labels)
        moved = await _write(core, practice_id, appointment_id, start, target, actor, practitioner_id,
                             expected_version)
        if moved is not None:
            return moved
    raise SlotLost("that slot was taken a moment ago; pick another time")


async def _write(
    core: Core, practice_id: int, appointment_id: int, start: datetime, target: int | None, actor: str,
    practitioner_id: int | None, expected_version: int | None,
) -> Moved | None:
    """Lock the schedule, then the appointment, and reschedule; None when the slot was taken meanwhile."""
    async with core.store.session() as s:
        if target is not None:
            await appointments.hold_schedule(s, target)
        appt = await appointments.get_for_change(s, practice_id, appointment_id)  # read again, locked
        before = appt.start
        try:
            await appointments.reschedule(
                s, core.bus, appt, start, None, actor,
                practitioner_id=practitioner_id, expected_version=expected_version,
            )
        except appointments.SlotTaken:
            return None  # nothing was written; the next attempt's check finds the clash
        return Moved(appt.id, appt.ref, before, appt.start, appt.end, appt.practitioner_id, appt.version)


async def cancel(
    core: Core,
    practice_id: int,
    appointment_id: int,
    *,
    reason: str,
    actor: str,
    expected_version: int | None = None,
    guard: Guard | None = None,
) -> Cancelled:
    """Cancel one appointment in one transaction, the appointment locked first; cancelling a
    cancelled one changes nothing. `guard` as for `move`; the card's version is checked unless the
    appointment is cancelled already (a double click)."""
    async with core.store.session() as s:
        appt = await appointments.get_for_change(s, practice_id, appointment_id)
        if guard is not None:
            guard(facts(appt))
        why = refuse_change(appt) or await refuse_read_only(s, appt)
        if why is not None:
            raise appointments.AppointmentError(why)
        was = appt.status
        await appointments.cancel(
            s, core.bus, appt, reason, actor, expected_version=expected_version if was != "cancelled" else None
        )
        return Cancelled(appt.id, appt.ref, was, appt.version)
