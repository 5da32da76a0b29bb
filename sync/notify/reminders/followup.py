"""The answer to a follow-up DM: Attended, No-show or Book follow-up.

Attended and No-show go through `sync.services.appointments.mark`, which bumps the version, audits and
emits the change event; the engine's subscriber turns that into outbox operations, which is how
the booking system hears of it where it supports this. Book follow-up changes nothing here: the
front end opens its booking form for the same practitioner and service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.events import EventBus
from sync.services.appointments import AppointmentError, get_for_change, mark
from sync.store import audit

__all__ = ["FOLLOWUP_ANSWERS", "FollowupAnswer", "FollowupOutcome", "answer_followup"]

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
