"""The follow-up DM after an appointment: Attended, No-show and Book follow-up.

Attended and No-show go through `sync.notify.reminders.answer_followup` (which marks the appointment via
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
from datetime import datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands.access import can_change, check_change
from bot.commands.actions import Action, BookFollowUp, MarkAttended, MarkNoShow
from bot.commands.identity import Actor
from bot.commands.present import agenda_item, day_label, moment_label
from bot.views import AgendaItem, Error, FollowUp, View
from sync.engine.projection import PROJECTIONS, initials
from sync.notify.reminders import answer_followup
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification, Notifier
from sync.services import appointments as svc
from sync.services import availability
from sync.services.appointment_views import practitioner_names, view_of
from sync.store.model import Appointment, AuditEntry, ChatIdentity, Practice, Practitioner

__all__ = [
    "DM_PROJECTION_KEY",
    "FOLLOWUP_BOOKING",
    "answer",
    "book",
    "dm_client",
    "dm_item",
    "followup_view",
    "person_zone",
]

#: Practice.settings key: what practitioner DMs show of the client ("busy", "initials", "full").
DM_PROJECTION_KEY = "dm_projection"
#: The notification kind that asks staff to book a follow-up.
FOLLOWUP_BOOKING: Final = "followup_booking"
SLOT_COUNT = 3
_MARKED = {"completed": "attended", "no_show": "no-show"}
_MARK_ACTIONS = ("appointment.completed", "appointment.no_show")
_REQUESTED = "appointment.followup_requested"
_ASKED = "clinicbot cannot create bookings itself: staff have been asked to book the follow-up in one of these slots."
_ASKED_NO_SLOT = (
    "clinicbot cannot create bookings itself: staff have been asked to book the follow-up "
    "(I found no free slot in the next two weeks)."
)


def dm_client(practice: Practice | None, appt: Appointment) -> str:
    """The client as practitioner DMs show them: the practice's DM projection, initials by default."""
    mode = str(((practice.settings or {}) if practice else {}).get(DM_PROJECTION_KEY) or "initials")
    if mode not in PROJECTIONS:
        mode = "initials"
    if mode == "full":
        return appt.client_name or appt.title or "(no name)"
    if mode == "busy":
        return "client"
    return initials(appt.client_name) or "client"


def person_zone(person: Practitioner | None, practice: Practice) -> str:
    """The practitioner's own IANA zone when valid, else the practice's."""
    for tz in ((person.timezone if person else None), practice.timezone, "UTC"):
        try:
            if tz:
                ZoneInfo(tz)
                return tz
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return "UTC"


async def dm_item(
    session: AsyncSession, actor: Actor, appt: Appointment, practice: Practice, tz: str, with_details: bool = True
) -> AgendaItem:
    """An agenda line for a DM: times in `tz`, the client projected, the actor's buttons."""
    names = await practitioner_names(session, {appt.practitioner_id} if appt.practitioner_id else set())
    item = agenda_item(actor, view_of(appt, names), tz, with_details=with_details)
    return replace(item, client=dm_client(practice, appt))


async def _who(session: AsyncSession, audit_actor: str) -> str:
    """A display name for an audit actor string ("slack:T1/U1" -> the person's chat name)."""
    platform, _, rest = audit_actor.partition(":")
    workspace, _, user = rest.partition("/")
    if user:
        name = await session.scalar(
            select(ChatIdentity.display_name).where(
                ChatIdentity.platform == platform,
                ChatIdentity.workspace_id == workspace,
                ChatIdentity.user_id == user,
            )
        )
        if name:
            return str(name)
    if audit_actor == "system:sync":  # read from the booking platform (Square, Acuity, Calendly report no-shows)
        return "the booking platform"
    return "clinicbot" if audit_actor == "system" else audit_actor


async def _last(session: AsyncSession, appointment_id: int, actions: tuple[str, ...]) -> AuditEntry | None:
    return await session.scalar(
        select(AuditEntry)
        .where(AuditEntry.appointment_id == appointment_id, AuditEntry.action.in_(actions))
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    )


async def followup_view(
    core: Core,
    session: AsyncSession,
    actor: Actor,
    appt: Appointment,
    practice: Practice,
    *,
    notice: str = "",
    slot_labels: tuple[str, ...] = (),
    booking_note: str = "",
) -> FollowUp:
    """The follow-up card as it stands now, for `actor`: the outcome so far and the answers left."""
    person = await session.get(Practitioner, appt.practitioner_id) if appt.practitioner_id else None
    tz = person_zone(person, practice)
    item = await dm_item(session, actor, appt, practice, tz, with_details=False)
    item = replace(item, actions=())
    outcome = ""
    if appt.status in _MARKED:
        entry = await _last(session, appt.id, _MARK_ACTIONS)
        by = f" by {await _who(session, entry.actor)}" if entry is not None else ""
        when = f" ({moment_label(entry.at, tz)})" if entry is not None else ""
        outcome = f"{appt.ref} marked {_MARKED[appt.status]}{by}{when}."
    elif appt.status == "cancelled":
        outcome = f"{appt.ref} was cancelled; there is nothing to record."
    requested = await _last(session, appt.id, (_REQUESTED,))
    if requested is not None and not booking_note:
        booking_note = (
            f"Follow-up booking requested by {await _who(session, requested.actor)} "
            f"({moment_label(requested.at, tz)}); staff have been asked to book it."
        )
    actions: list[Action] = []
    if can_change(actor, appt):
        if appt.status in svc.ACTIVE_STATUSES:
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


async def _load(
    session: AsyncSession, actor: Actor, appointment_id: int, *, lock: bool = True
) -> tuple[Practice, Appointment]:
    """The practice and the appointment, locked for a change unless `lock` is False (a look
    that goes on to ask calendars over the network must not hold the database's write lock)."""
    practice = await session.get(Practice, actor.practice_id)
    get = svc.get_for_change if lock else svc.get_by_ref
    appt = await get(session, actor.practice_id, appointment_id)
    check_change(actor, view_of(appt, {}), "record the outcome of")
    assert practice is not None  # the appointment belongs to the actor's practice
    return practice, appt


async def answer(core: Core, actor: Actor, action: MarkAttended | MarkNoShow) -> View:
    """Attended or No-show: mark once; a second answer changes nothing and says what stands."""
    wanted = "attended" if isinstance(action, MarkAttended) else "no_show"
    async with core.store.session() as session:
        practice, appt = await _load(session, actor, action.appointment_id)
        if appt.status in _MARKED:
            view = await followup_view(core, session, actor, appt, practice)
            return replace(view, notice=f"Already recorded: {view.outcome} Nothing was changed.")
        if appt.status == "cancelled":
            return await followup_view(core, session, actor, appt, practice, notice="Nothing was changed.")
        if appt.start > core.clock():
            return Error(
                f"{appt.ref} has not started yet (it is at {moment_label(appt.start, practice.timezone)}); "
                "record the outcome after the visit",
                kind="conflict",
            )
        await answer_followup(session, core.bus, practice.id, appt.id, wanted, actor.audit_name)
        view = await followup_view(core, session, actor, appt, practice)
        return replace(view, notice="Thanks, recorded.")


def _first_day_after(moment: datetime, tz: str) -> datetime:
    """Midnight starting the day after `moment` in zone `tz`: follow-ups are booked on a later day."""
    zone = ZoneInfo(tz)
    return datetime.combine(moment.astimezone(zone).date() + timedelta(days=1), time.min, zone)


async def book(core: Core, actor: Actor, action: BookFollowUp) -> View:
    """Book follow-up: offer the practitioner's next free slots and ask staff to book one."""
    async with core.store.session() as session:
        practice, appt = await _load(session, actor, action.appointment_id, lock=False)
        if appt.status == "cancelled":
            return await followup_view(core, session, actor, appt, practice, notice="Nothing was changed.")
        if await _last(session, appt.id, (_REQUESTED,)) is not None:
            view = await followup_view(core, session, actor, appt, practice)
            return replace(view, notice="A follow-up was already requested; staff were not asked again.")
        person = await session.get(Practitioner, appt.practitioner_id) if appt.practitioner_id else None
        tz = person_zone(person, practice)
        free: list[datetime] = []
        if appt.practitioner_id is not None:
            after = _first_day_after(max(core.clock(), appt.end), practice.timezone)
            free = await availability.next_free_slots(
                core, appt.practitioner_id, after, appt.end - appt.start, SLOT_COUNT
            )
        labels = tuple(moment_label(f, tz) for f in free)
        practice_id, practitioner_id, appt_id = practice.id, appt.practitioner_id, appt.id
    delivered, why = await _tell_staff(core, actor, practice_id, practitioner_id, appt_id, free)
    async with core.store.session() as session:
        practice, appt = await _load(session, actor, appt_id)
        if delivered and await _last(session, appt.id, (_REQUESTED,)) is not None:
            # a second press at the same moment: staff were asked twice, the request is recorded once
            view = await followup_view(core, session, actor, appt, practice, slot_labels=labels)
            return replace(view, notice="A follow-up was already requested.")
        if not delivered:
            view = await followup_view(core, session, actor, appt, practice, slot_labels=labels)
            return replace(
                view,
                notice="Nothing was recorded.",
                booking_note=f"I could not reach any staff member in chat ({why}); "
                "please ask the front desk to book the follow-up.",
            )
        await answer_followup(session, core.bus, practice.id, appt.id, "book_followup", actor.audit_name)
        return await followup_view(
            core,
            session,
            actor,
            appt,
            practice,
            notice="Follow-up requested.",
            slot_labels=labels,
            booking_note=_ASKED if labels else _ASKED_NO_SLOT,
        )


async def _tell_staff(
    core: Core, actor: Actor, practice_id: int, practitioner_id: int | None, appt_id: int, free: list[datetime]
) -> tuple[bool, str]:
    """Send the booking request to the practice's staff; (delivered, why not)."""
    notifier = core.services.notifier
    if not isinstance(notifier, Notifier):
        return False, "no chat front end is running"
    note = Notification(
        kind=FOLLOWUP_BOOKING,
        practice_id=practice_id,
        practitioner_id=practitioner_id,
        audience="staff",
        appointment_ids=(appt_id,),
        data={"slots": [f.isoformat() for f in free], "requested_by": actor.display},
    )
    try:
        await notifier.notify(note)
    except DeliveryError as exc:
        return False, str(exc)[:120]
    return True, ""
