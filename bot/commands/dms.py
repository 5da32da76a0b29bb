"""What a practitioner (or staff) DM shows: reminder, daily agenda, follow-up, follow-up booking request.

Read fresh from the database at send time (a notification carries ids, not data), with the
recipient's permissions deciding the buttons. Times are in the practitioner's own zone; clients
are shown by the practice's DM projection (initials unless the practice chose otherwise).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands.access import can_see
from bot.commands.followups import FOLLOWUP_BOOKING, dm_item, followup_view, person_zone
from bot.commands.identity import Actor
from bot.commands.present import day_label, details_action, moment_label
from bot.commands.shift_day import with_shifts
from bot.views import Agenda, Error, FollowUpRequest, ReminderCard, View
from sync.engine.series import visit
from sync.runtime.core import Core
from sync.runtime.notifier import Notification
from sync.services.appointment_views import view_of
from sync.services.appointments import list_day
from sync.store.model import Appointment, Practice, Practitioner

__all__ = ["DM_KINDS", "notification_view"]

DM_KINDS = ("reminder", "agenda", "followup", FOLLOWUP_BOOKING)
_GONE = Error("That appointment no longer exists.", kind="not_found")


def _span(minutes: int) -> str:
    """60 -> "60 minutes", 1440 -> "24 hours", 90 -> "1 h 30 min"."""
    if minutes <= 90:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    return f"{hours} hours" if not rest else f"{hours} h {rest} min"


async def _appointment(session: AsyncSession, n: Notification) -> tuple[Practice, Appointment] | None:
    practice = await session.get(Practice, n.practice_id)
    appt = await session.get(Appointment, n.appointment_ids[0]) if n.appointment_ids else None
    if practice is None or appt is None or appt.practice_id != n.practice_id:
        return None
    return practice, appt


async def _reminder(core: Core, session: AsyncSession, n: Notification, actor: Actor) -> View:
    found = await _appointment(session, n)
    if found is None:
        return _GONE
    practice, appt = found
    if isinstance(n.data.get("visit_start"), str):  # one visit of a recurring series
        appt = visit(appt, datetime.fromisoformat(n.data["visit_start"]))
    person = await session.get(Practitioner, appt.practitioner_id) if appt.practitioner_id else None
    tz = person_zone(person, practice)
    item = await dm_item(session, actor, appt, practice, tz)
    late = bool(n.data.get("late"))
    if late or "offset_minutes" not in n.data:
        left = max(0, round((appt.start - core.clock()).total_seconds() / 60))
    else:
        left = int(n.data["offset_minutes"])
    headline = f"Reminder: starts in {_span(left)}" if left else "Reminder: starting now"
    return ReminderCard(
        item=item,
        headline=headline,
        date_label=day_label(item.start.date()),
        timezone=tz,
        location=appt.location_text or "",
        late=late,
    )


async def _agenda(session: AsyncSession, n: Notification, actor: Actor) -> View:
    practice = await session.get(Practice, n.practice_id)
    person = await session.get(Practitioner, n.practitioner_id) if n.practitioner_id else None
    if practice is None or person is None or person.practice_id != practice.id:
        return Error("That practitioner is no longer in the practice.", kind="not_found")
    tz = person_zone(person, practice)
    try:
        day = date.fromisoformat(str(n.data.get("date")))
    except ValueError:
        return Error("This agenda has no valid date.", kind="input")
    rows = await list_day(session, practice.id, day, tz, person.id)
    items = tuple([await dm_item(session, actor, a, practice, tz) for a in rows if can_see(actor, a)])
    return Agenda(
        title=f"Your day, {day_label(day)} · {person.name}",
        day=day,
        timezone=tz,
        items=items,
        practitioner=person.name,
        empty_text=f"No appointments on {day_label(day)}.",
    )


async def _booking_request(session: AsyncSession, n: Notification, actor: Actor) -> View:
    found = await _appointment(session, n)
    if found is None:
        return _GONE
    practice, appt = found
    tz = practice.timezone
    item = await dm_item(session, actor, appt, practice, tz, with_details=False)
    item = replace(item, actions=(details_action(view_of(appt, {})),) if can_see(actor, appt) else ())
    labels: list[str] = []
    for raw in n.data.get("slots") or ():
        try:
            labels.append(moment_label(datetime.fromisoformat(str(raw)), tz))
        except ValueError:
            continue
    return FollowUpRequest(
        item=item,
        date_label=day_label(item.start.date()),
        timezone=tz,
        requested_by=str(n.data.get("requested_by") or "a practitioner")[:100],
        duration_minutes=round((appt.end - appt.start).total_seconds() / 60),
        slots=tuple(labels),
    )


async def notification_view(core: Core, n: Notification, actor: Actor) -> View | None:
    """The DM view for reminder, agenda, follow-up and booking-request notifications; None for others."""
    if n.kind not in DM_KINDS:
        return None
    if n.kind == "agenda":
        async with core.store.session() as session:
            agenda = await _agenda(session, n, actor)
        # Their shifts that day too (the shift service reads in a session of its own).
        return await with_shifts(core, n.practice_id, agenda, n.practitioner_id) if isinstance(agenda, Agenda) \
            else agenda
    async with core.store.session() as session:
        if n.kind == "reminder":
            return await _reminder(core, session, n, actor)
        if n.kind == FOLLOWUP_BOOKING:
            return await _booking_request(session, n, actor)
        found = await _appointment(session, n)
        if found is None:
            return _GONE
        practice, appt = found
        return await followup_view(core, session, actor, appt, practice)
