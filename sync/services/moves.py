"""Moving an appointment (a reschedule from chat, a card or any front end): the slot check, the lock
order, the write and the retry, in one place.

A move is two transactions. `prepare` reads what the move needs before any lock is held: the
appointment (with its practice's zone and read model for a front end), its booking and the
calendars whose free/busy count for the practitioner. `commit` asks the booking platform and those
calendars over the network, still holding no lock (a provider refreshing its sign-in writes to the
database, which on SQLite would wait for our lock). Then, in one transaction, the practitioner's
schedule and the appointment are locked, in that order, the slot is checked against clinicbot's
own bookings, and `appointments.reschedule` checks the card's version and the slot again and
writes the change with its audit entry and outbox rows; a front end's answer (the details) is
read in that same transaction. A slot taken that the check does not refuse (a transparent booking
in it) ends that transaction unchanged, and the whole move runs once more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import BusyInterval
from sync.contract.items import Window
from sync.engine.series import refuse_change
from sync.integrations.sources import refuse_read_only
from sync.runtime.core import Core
from sync.services import appointments, availability, bookings
from sync.services.appointment_views import AppointmentDetails, LoadedAppointment, details_of, load_one, practice_of
from sync.services.errors import Conflict, Invalid
from sync.store.model import Appointment, Calendar, Connection, Practitioner

__all__ = [
    "AppointmentFacts",
    "BookingRefused",
    "Cancelled",
    "Moved",
    "Prepared",
    "SlotLost",
    "TimeRefused",
    "UnknownPractitioner",
    "cancel",
    "commit",
    "move",
    "prepare",
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
    #: The moved appointment's details, read in the move's transaction (`commit(details=True)`), else None.
    details: AppointmentDetails | None = None


@dataclass(frozen=True, slots=True)
class Cancelled:
    appointment_id: int
    ref: str
    #: The status before: "cancelled" when it was cancelled already (nothing changed).
    was: str
    version: int
    #: The appointment's details, read in the cancel's transaction (`cancel(details=True)`), else None.
    details: AppointmentDetails | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """What one read found before a move (see `prepare`); `commit` moves it."""

    practice_id: int
    appointment_id: int
    #: The practitioner it is given to (None: it stays with its own).
    practitioner_id: int | None
    facts: AppointmentFacts
    #: The appointment's read model and its practice's zone (`prepare(view=True)`), else None.
    loaded: LoadedAppointment | None
    start: datetime
    end: datetime
    #: Why the appointment itself refuses a change (a series, a read-only source), or None.
    refused: str | None
    unknown_practitioner: bool
    #: Whether to ask its booking platform first (`prepare(booking=True)`), and what to ask.
    ask_booking: bool
    booking: bookings.BookingRef | None
    #: The calendars whose free/busy count for the practitioner it goes to.
    calendars: tuple[tuple[Calendar, Connection], ...]

    @property
    def target(self) -> int | None:
        return self.practitioner_id or self.facts.practitioner_id


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


class BookingRefused(Conflict):
    """The appointment's booking platform cannot take a reschedule from chat (Calendly); the message says why."""


Guard = Callable[[AppointmentFacts], None]


def facts(appt: Appointment) -> AppointmentFacts:
    return AppointmentFacts(appt.id, appt.ref, appt.practice_id, appt.practitioner_id, appt.status, appt.version)


async def prepare(
    core: Core,
    practice_id: int,
    appointment_id: int,
    *,
    practitioner_id: int | None = None,
    view: bool = False,
    booking: bool = False,
) -> Prepared:
    """Read what moving the appointment needs, in one transaction, holding no lock. `view`: also its
    read model and its practice's zone (raises NoPractice); `booking`: also its booking, so that
    `commit` asks the platform first. Raises AppointmentNotFound."""
    async with core.store.session() as s:
        loaded: LoadedAppointment | None = None
        if view:
            appt, loaded = await load_one(s, practice_id, appointment_id)
            refused = loaded.view.change_refusal or loaded.view.read_only
        else:
            appt = await appointments.get_by_ref(s, practice_id, appointment_id)
            refused = refuse_change(appt) or await refuse_read_only(s, appt)
        unknown = False
        if practitioner_id is not None and practitioner_id != appt.practitioner_id:
            other = await s.get(Practitioner, practitioner_id)
            unknown = other is None or other.practice_id != practice_id
        target = practitioner_id or appt.practitioner_id
        found = await bookings.booking_of(s, core, practice_id, appt) if booking else None
        calendars = tuple(await availability.busy_calendars(s, target)) if target is not None and not unknown else ()
        return Prepared(
            practice_id,
            appt.id,
            practitioner_id,
            facts(appt),
            loaded,
            appt.start,
            appt.end,
            refused,
            unknown,
            booking,
            found,
            calendars,
        )


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
    """Move one appointment to `start` (keeping its length), optionally to another practitioner:
    `prepare`, then `commit`."""
    ready = await prepare(core, practice_id, appointment_id, practitioner_id=practitioner_id)
    return await commit(core, ready, start, actor=actor, expected_version=expected_version, guard=guard)


async def commit(
    core: Core,
    ready: Prepared,
    start: datetime,
    *,
    actor: str,
    expected_version: int | None = None,
    guard: Guard | None = None,
    details: bool = False,
) -> Moved:
    """Move the prepared appointment to `start` (keeping its length).

    In order: its booking platform is asked (`prepare(booking=True)`; raises BookingRefused);
    `guard` is called with the appointment's facts and raises when the person may not change it;
    then AppointmentError (a series, a read-only source), UnknownPractitioner, TimeRefused (past,
    busy in a connected calendar, or taken), StaleVersion, AppointmentNotFound, and SlotLost (taken
    on every attempt). `details`: the answer's details are read in the move's transaction (it needs
    `prepare(view=True)`).
    """
    if ready.ask_booking:
        refusal = await bookings.refusal_of(core, ready.booking)
        if refusal is not None:
            raise BookingRefused(refusal)
    for attempt in range(ATTEMPTS):
        if attempt:
            ready = await prepare(
                core,
                ready.practice_id,
                ready.appointment_id,
                practitioner_id=ready.practitioner_id,
                view=ready.loaded is not None,
            )
        if guard is not None:
            guard(ready.facts)
        if ready.refused is not None:
            raise appointments.AppointmentError(ready.refused)
        if ready.unknown_practitioner:
            raise UnknownPractitioner("that practitioner is not in this practice")
        now = core.clock()
        if start < now - GRACE:
            raise TimeRefused("has already passed; pick a later time", now)
        end = start + (ready.end - ready.start)
        busy: tuple[BusyInterval, ...] = ()
        if ready.target is not None:  # connected calendars are asked holding no lock
            found, _ = await availability.calendars_busy(core, ready.calendars, Window(start, end))
            # the appointment's own copies on mirrors are not a conflict
            busy = tuple(
                b for b in found if (b.start, b.end) != (ready.start, ready.end) and b.start < end and b.end > start
            )
        moved = await _write(core, ready, start, end, busy, actor, expected_version, details)
        if moved is not None:
            return moved
    raise SlotLost("that slot was taken a moment ago; pick another time")


async def _write(
    core: Core,
    ready: Prepared,
    start: datetime,
    end: datetime,
    busy: tuple[BusyInterval, ...],
    actor: str,
    expected_version: int | None,
    details: bool,
) -> Moved | None:
    """Lock the schedule, then the appointment; check the slot and reschedule. None when the slot
    holds a booking the check does not refuse (nothing was written; the next attempt runs again)."""
    target = ready.target
    async with core.store.session() as s:
        if target is not None:
            await appointments.hold_schedule(s, target)
        appt = await appointments.get_for_change(s, ready.practice_id, ready.appointment_id)  # read again, locked
        # One look at the slot under the lock: bookings that hold time refuse it (TimeRefused); any
        # other (a transparent one) is left to `reschedule`, which refuses it as SlotTaken.
        overlaps = await _check_slot(s, target, start, end, ready.appointment_id, busy) if target is not None else []
        before = appt.start
        try:
            await appointments.reschedule(
                s,
                core.bus,
                appt,
                start,
                None,
                actor,
                practitioner_id=ready.practitioner_id,
                expected_version=expected_version,
                allow_overlap=not overlaps,
            )
        except appointments.SlotTaken:
            return None
        shown = None
        if details:
            assert ready.loaded is not None, "commit(details=True) needs prepare(view=True)"
            shown = await details_of(s, appt, ready.loaded.timezone)
        return Moved(appt.id, appt.ref, before, appt.start, appt.end, appt.practitioner_id, appt.version, shown)


async def _check_slot(
    session: AsyncSession,
    practitioner_id: int,
    start: datetime,
    end: datetime,
    exclude_id: int,
    busy: tuple[BusyInterval, ...],
) -> list[Appointment]:
    """Raise TimeRefused when clinicbot's own bookings that hold time (active, not transparent) or
    `busy` (connected calendars) overlap [start, end); else the active bookings that overlap it
    (transparent ones). With the schedule held, what this finds stays true until the commit."""
    overlaps = await appointments.find_overlaps(session, practitioner_id, start, end, exclude_id=exclude_id)
    taken = sorted({o.id for o in overlaps if not o.transparent})
    if taken or busy:
        labels = tuple(sorted({f"A-{i}" for i in taken} | ({"busy in a connected calendar"} if busy else set())))
        raise TimeRefused(f"is taken ({', '.join(labels)})", start, labels)
    return overlaps


async def cancel(
    core: Core,
    practice_id: int,
    appointment_id: int,
    *,
    reason: str,
    actor: str,
    expected_version: int | None = None,
    guard: Guard | None = None,
    details: bool = False,
) -> Cancelled:
    """Cancel one appointment in one transaction, the appointment locked first; cancelling a
    cancelled one changes nothing. `guard` as for `move`; the card's version is checked unless the
    appointment is cancelled already (a double click). `details`: the answer's details are read in
    the same transaction (raises NoPractice, and nothing changes, when the practice is gone)."""
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
        shown = await details_of(s, appt, (await practice_of(s, practice_id)).timezone) if details else None
        return Cancelled(appt.id, appt.ref, was, appt.version, shown)
