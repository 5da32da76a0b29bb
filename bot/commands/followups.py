"""The follow-up DM after an appointment: Attended, No-show and Book follow-up.

Attended and No-show go through `sync.services.followups.record_followup` (which marks the appointment via
`sync.services.appointments.mark`: version bump, audit entry naming the chat user, change event, and so
the booking system through the outbox where it supports this). An appointment already answered
is left alone: a second press, by anyone, is a no-op that says what was recorded.

clinicbot cannot create new bookings (the booking platform owns them), so Book follow-up finds
the practitioner's next free slots for a visit of the same length and service, and asks staff
(audience "staff") to book one; the practitioner's card shows the same slots.

Only the appointment's own practitioner or staff may answer (bot.commands.access).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Final, Literal

from bot.commands.access import can_change, check_change
from bot.commands.actions import Action, BookFollowUp, MarkAttended, MarkNoShow
from bot.commands.identity import Actor
from bot.commands.present import agenda_item, day_label, moment_label
from bot.views import AgendaItem, Error, FollowUp, View
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification, Notifier
from sync.services import followups as svc
from sync.services.appointment_views import AppointmentView
from sync.services.appointments import ACTIVE_STATUSES
from sync.services.dm_views import DmAppointment, FollowUpState

__all__ = [
    "FOLLOWUP_BOOKING",
    "answer",
    "book",
    "dm_item",
    "followup_view",
]

#: The notification kind that asks staff to book a follow-up.
FOLLOWUP_BOOKING: Final = "followup_booking"
_MARKED = {"completed": "attended", "no_show": "no-show"}
_ASKED = "clinicbot cannot create bookings itself: staff have been asked to book the follow-up in one of these slots."
_ASKED_NO_SLOT = (
    "clinicbot cannot create bookings itself: staff have been asked to book the follow-up "
    "(I found no free slot in the next two weeks)."
)


def dm_item(actor: Actor, shown: DmAppointment, with_details: bool = True) -> AgendaItem:
    """An agenda line for a DM: times in the DM's zone, the client projected, the actor's buttons."""
    item = agenda_item(actor, shown.view, shown.timezone, with_details=with_details)
    return replace(item, client=shown.client)


def followup_view(
    actor: Actor,
    state: FollowUpState,
    *,
    notice: str = "",
    slot_labels: tuple[str, ...] = (),
    booking_note: str = "",
) -> FollowUp:
    """The follow-up card as it stands now, for `actor`: the outcome so far and the answers left."""
    shown = state.appointment
    appt, tz = shown.view, shown.timezone
    item = replace(dm_item(actor, shown, with_details=False), actions=())
    outcome = ""
    if appt.status in _MARKED:
        marked = state.marked
        by = f" by {marked.who}" if marked is not None else ""
        when = f" ({moment_label(marked.at, tz)})" if marked is not None else ""
        outcome = f"{appt.ref} marked {_MARKED[appt.status]}{by}{when}."
    elif appt.status == "cancelled":
        outcome = f"{appt.ref} was cancelled; there is nothing to record."
    requested = state.requested
    if requested is not None and not booking_note:
        booking_note = (
            f"Follow-up booking requested by {requested.who} "
            f"({moment_label(requested.at, tz)}); staff have been asked to book it."
        )
    actions: list[Action] = []
    if can_change(actor, appt):
        if appt.status in ACTIVE_STATUSES:
            actions += [MarkAttended(appt.id), MarkNoShow(appt.id)]
        if appt.status != "cancelled" and requested is None:
            actions.append(BookFollowUp(appt.id))
    return FollowUp(
        item=item,
        date_label=day_label(item.start.date()),
        timezone=tz,
        actions=tuple(actions),
        outcome=outcome,
        notice=notice,
        slots=slot_labels,
        booking_note=booking_note,
    )


def _guard(actor: Actor) -> svc.Guard:
    def check(appt: AppointmentView) -> None:
        check_change(actor, appt, "record the outcome of")

    return check


async def answer(core: Core, actor: Actor, action: MarkAttended | MarkNoShow) -> View:
    """Attended or No-show: mark once; a second answer changes nothing and says what stands."""
    wanted: Literal["attended", "no_show"] = "attended" if isinstance(action, MarkAttended) else "no_show"
    done = await svc.record_followup(
        core, actor.practice_id, action.appointment_id, wanted, actor.audit_name, _guard(actor)
    )
    if done.result == "already":
        view = followup_view(actor, done.state)
        return replace(view, notice=f"Already recorded: {view.outcome} Nothing was changed.")
    if done.result == "cancelled":
        return followup_view(actor, done.state, notice="Nothing was changed.")
    if done.result == "not_started":
        appt = done.state.appointment
        return Error(
            f"{appt.view.ref} has not started yet (it is at {moment_label(appt.view.start, appt.practice_timezone)}); "
            "record the outcome after the visit",
            kind="conflict",
        )
    return replace(followup_view(actor, done.state), notice="Thanks, recorded.")


async def book(core: Core, actor: Actor, action: BookFollowUp) -> View:
    """Book follow-up: offer the practitioner's next free slots and ask staff to book one."""
    plan = await svc.plan_followup_booking(core, actor.practice_id, action.appointment_id, _guard(actor))
    if plan.result == "cancelled":
        return followup_view(actor, plan.state, notice="Nothing was changed.")
    if plan.result == "already":
        view = followup_view(actor, plan.state)
        return replace(view, notice="A follow-up was already requested; staff were not asked again.")
    shown = plan.state.appointment
    labels = tuple(moment_label(f, shown.timezone) for f in plan.free)
    delivered, why = await _tell_staff(core, actor, shown.view, list(plan.free))
    done = await svc.finish_followup_booking(
        core, actor.practice_id, shown.view.id, actor.audit_name, _guard(actor), delivered=delivered
    )
    if done.result == "already":
        # a second press at the same moment: staff were asked twice, the request is recorded once
        view = followup_view(actor, done.state, slot_labels=labels)
        return replace(view, notice="A follow-up was already requested.")
    if done.result == "not_delivered":
        view = followup_view(actor, done.state, slot_labels=labels)
        return replace(
            view,
            notice="Nothing was recorded.",
            booking_note=f"I could not reach any staff member in chat ({why}); "
            "please ask the front desk to book the follow-up.",
        )
    return followup_view(
        actor,
        done.state,
        notice="Follow-up requested.",
        slot_labels=labels,
        booking_note=_ASKED if labels else _ASKED_NO_SLOT,
    )


async def _tell_staff(core: Core, actor: Actor, appt: AppointmentView, free: list[datetime]) -> tuple[bool, str]:
    """Send the booking request to the practice's staff; (delivered, why not)."""
    notifier = core.services.notifier
    if not isinstance(notifier, Notifier):
        return False, "no chat front end is running"
    note = Notification(
        kind=FOLLOWUP_BOOKING,
        practice_id=appt.practice_id,
        practitioner_id=appt.practitioner_id,
        audience="staff",
        appointment_ids=(appt.id,),
        data={"slots": [f.isoformat() for f in free], "requested_by": actor.display},
    )
    try:
        await notifier.notify(note)
    except DeliveryError as exc:
        return False, str(exc)[:120]
    return True, ""
