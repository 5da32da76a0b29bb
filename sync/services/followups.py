"""The answer to a follow-up DM: Attended, No-show or Book follow-up.

Attended and No-show go through `sync.services.appointments.mark`, which bumps the version, audits and
emits the change event; the engine's subscriber turns that into outbox operations, which is how
the booking system hears of it where it supports this. An appointment already answered is left
alone: a second press, by anyone, is a no-op that says what was recorded.

clinicbot cannot create bookings (the booking platform owns them): Book follow-up finds the
practitioner's next free slots (`plan_followup_booking`), the front end asks staff to book one, and
`finish_followup_booking` records that it asked. Each step is one transaction; who may answer is
the front end's `guard`, called with the appointment before anything changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.core import Core
from sync.runtime.events import EventBus
from sync.services import availability
from sync.services.appointment_views import AppointmentView, view_of
from sync.services.appointments import AppointmentError, get_by_ref, get_for_change, mark
from sync.services.dm_views import REQUESTED, FollowUpState, followup_state, last_entry
from sync.store import audit
from sync.store.model import Appointment, Practice

__all__ = [
    "FOLLOWUP_ANSWERS",
    "SLOT_COUNT",
    "Answered",
    "BookingPlan",
    "FollowupAnswer",
    "FollowupOutcome",
    "Guard",
    "answer_followup",
    "finish_followup_booking",
    "plan_followup_booking",
    "record_followup",
]

#: How many free slots a follow-up booking request offers.
SLOT_COUNT = 3
#: Called with the appointment (in the transaction, before any change); raises to refuse the person.
Guard = Callable[[AppointmentView], None]

FollowupAnswer = Literal["attended", "no_show", "book_followup"]
FOLLOWUP_ANSWERS: tuple[FollowupAnswer, ...] = ("attended", "no_show", "book_followup")


@dataclass(frozen=True, slots=True)
class FollowupOutcome:
    appointment_id: int
    status: str
    #: The front end should open its booking form (same practitioner and service).
    book_followup: bool
    practitioner_id: int | None
    service: str | None
    summary: str


async def answer_followup(
    session: AsyncSession, bus: EventBus, practice_id: int, appointment_id: int, answer: str, actor: str
) -> FollowupOutcome:
    """Apply one follow-up answer; a repeated answer is a no-op, a contradicting one re-marks."""
    if answer not in FOLLOWUP_ANSWERS:
        raise AppointmentError(
            f"{answer!r} is not a follow-up answer; use attended, no_show or book_followup"
        )
    appt = await get_for_change(session, practice_id, appointment_id)
    if answer == "book_followup":
        await audit.record(
            session,
            actor=actor,
            action="appointment.followup_requested",
            practice_id=practice_id,
            appointment_id=appt.id,
        )
        return FollowupOutcome(
            appt.id,
            appt.status,
            True,
            appt.practitioner_id,
            appt.service,
            f"A-{appt.id}: opening a follow-up booking",
        )
    await mark(session, bus, appt, "completed" if answer == "attended" else "no_show", actor)
    label = "attended" if appt.status == "completed" else "no-show"
    return FollowupOutcome(
        appt.id, appt.status, False, appt.practitioner_id, appt.service, f"A-{appt.id} marked {label}"
    )


@dataclass(frozen=True, slots=True)
class Answered:
    """A follow-up answer's result and the card's facts after it.

    `result`: "recorded"; "already" (marked before, or a follow-up already requested: nothing
    changed); "cancelled" (nothing to record); "not_started" (the visit is still ahead);
    "not_delivered" (no staff member could be asked: nothing recorded).
    """

    state: FollowUpState
    result: str


@dataclass(frozen=True, slots=True)
class BookingPlan:
    """Book follow-up, before staff are asked: the card and the practitioner's next free starts.
    `result` is "ask" (go on and ask staff), "cancelled" or "already" (asked before)."""

    state: FollowUpState
    result: str
    free: tuple[datetime, ...]


async def _load(session: AsyncSession, practice_id: int, appointment_id: int, guard: Guard, *, lock: bool = True
                ) -> tuple[Practice, Appointment]:
    """The practice and the appointment, locked for a change unless `lock` is False (a look that goes
    on to ask calendars over the network must not hold the database's write lock)."""
    practice = await session.get(Practice, practice_id)
    get = get_for_change if lock else get_by_ref
    appt = await get(session, practice_id, appointment_id)
    guard(view_of(appt, {}))
    assert practice is not None  # the appointment belongs to the practice
    return practice, appt


async def record_followup(
    core: Core, practice_id: int, appointment_id: int, answer: Literal["attended", "no_show"], actor: str,
    guard: Guard,
) -> Answered:
    """Attended or No-show: mark once; a second answer changes nothing."""
    async with core.store.session() as session:
        practice, appt = await _load(session, practice_id, appointment_id, guard)
        if appt.status in ("completed", "no_show"):
            return Answered(await followup_state(session, practice, appt), "already")
        if appt.status == "cancelled":
            return Answered(await followup_state(session, practice, appt), "cancelled")
        if appt.start > core.clock():
            return Answered(await followup_state(session, practice, appt), "not_started")
        await answer_followup(session, core.bus, practice.id, appt.id, answer, actor)
        return Answered(await followup_state(session, practice, appt), "recorded")


def _first_day_after(moment: datetime, tz: str) -> datetime:
    """Midnight starting the day after `moment` in zone `tz`: follow-ups are booked on a later day."""
    zone = ZoneInfo(tz)
    return datetime.combine(moment.astimezone(zone).date() + timedelta(days=1), time.min, zone)


async def plan_followup_booking(core: Core, practice_id: int, appointment_id: int, guard: Guard) -> BookingPlan:
    """Book follow-up, first step: the practitioner's next free slots for a visit of the same length
    (from the day after the visit, or after today), unless it was cancelled or already requested."""
    async with core.store.session() as session:
        practice, appt = await _load(session, practice_id, appointment_id, guard, lock=False)
        state = await followup_state(session, practice, appt)
        if appt.status == "cancelled":
            return BookingPlan(state, "cancelled", ())
        if state.requested is not None:
            return BookingPlan(state, "already", ())
        free: list[datetime] = []
        if appt.practitioner_id is not None:
            after = _first_day_after(max(core.clock(), appt.end), practice.timezone)
            free = await availability.next_free_slots(
                core, appt.practitioner_id, after, appt.end - appt.start, SLOT_COUNT
            )
        return BookingPlan(state, "ask", tuple(free))


async def finish_followup_booking(
    core: Core, practice_id: int, appointment_id: int, actor: str, guard: Guard, *, delivered: bool
) -> Answered:
    """Book follow-up, last step, once staff were asked (`delivered`) or could not be: record the
    request once (a second press at the same moment asked staff twice, and is recorded once)."""
    async with core.store.session() as session:
        practice, appt = await _load(session, practice_id, appointment_id, guard)
        if delivered and await last_entry(session, appt.id, (REQUESTED,)) is not None:
            return Answered(await followup_state(session, practice, appt), "already")
        if not delivered:
            return Answered(await followup_state(session, practice, appt), "not_delivered")
        await answer_followup(session, core.bus, practice.id, appt.id, "book_followup", actor)
        return Answered(await followup_state(session, practice, appt), "recorded")
