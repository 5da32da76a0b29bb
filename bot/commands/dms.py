"""What a practitioner (or staff) DM shows: reminder, daily agenda, follow-up, follow-up booking request.

Read fresh at send time by `sync.services.dm_views` (a notification carries ids, not data), with
the recipient's permissions deciding the buttons. Times are in the practitioner's own zone; clients
are shown by the practice's DM projection (initials unless the practice chose otherwise).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from bot.commands.access import can_see
from bot.commands.followups import FOLLOWUP_BOOKING, dm_item, followup_view
from bot.commands.identity import Actor
from bot.commands.present import day_label, details_action, moment_label
from bot.commands.shift_day import with_shifts
from bot.views import Agenda, Error, FollowUpRequest, ReminderCard, View
from sync.runtime.core import Core
from sync.runtime.notifier import Notification
from sync.services.dm_views import load_booking_request, load_dm_agenda, load_followup, load_reminder

__all__ = ["DM_KINDS", "notification_view"]

DM_KINDS = ("reminder", "agenda", "followup", FOLLOWUP_BOOKING)
_GONE = Error("That appointment no longer exists.", kind="not_found")


def _span(minutes: int) -> str:
    """60 -> "60 minutes", 1440 -> "24 hours", 90 -> "1 h 30 min"."""
    if minutes <= 90:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    return f"{hours} hours" if not rest else f"{hours} h {rest} min"


def _first(n: Notification) -> int | None:
    return n.appointment_ids[0] if n.appointment_ids else None


async def _reminder(core: Core, n: Notification, actor: Actor) -> View:
    raw_visit = n.data.get("visit_start")
    visit_start = datetime.fromisoformat(raw_visit) if isinstance(raw_visit, str) else None
    shown = await load_reminder(core, n.practice_id, _first(n), visit_start)
    if shown is None:
        return _GONE
    item = dm_item(actor, shown)
    late = bool(n.data.get("late"))
    if late or "offset_minutes" not in n.data:
        left = max(0, round((shown.view.start - core.clock()).total_seconds() / 60))
    else:
        left = int(n.data["offset_minutes"])
    headline = f"Reminder: starts in {_span(left)}" if left else "Reminder: starting now"
    return ReminderCard(
        item=item,
        headline=headline,
        date_label=day_label(item.start.date()),
        timezone=shown.timezone,
        location=shown.view.location,
        late=late,
    )


async def _agenda(core: Core, n: Notification, actor: Actor) -> View:
    try:
        day: date | None = date.fromisoformat(str(n.data.get("date")))
    except ValueError:
        day = None
    agenda = await load_dm_agenda(core, n.practice_id, n.practitioner_id, day)
    if agenda is None:
        return Error("That practitioner is no longer in the practice.", kind="not_found")
    if day is None:
        return Error("This agenda has no valid date.", kind="input")
    items = tuple(dm_item(actor, a) for a in agenda.appointments if can_see(actor, a.view))
    return Agenda(
        title=f"Your day, {day_label(day)} · {agenda.practitioner}",
        day=day,
        timezone=agenda.timezone,
        items=items,
        practitioner=agenda.practitioner,
        empty_text=f"No appointments on {day_label(day)}.",
    )


async def _booking_request(core: Core, n: Notification, actor: Actor) -> View:
    shown = await load_booking_request(core, n.practice_id, _first(n))
    if shown is None:
        return _GONE
    tz = shown.timezone
    item = dm_item(actor, shown, with_details=False)
    item = replace(item, actions=(details_action(shown.view),) if can_see(actor, shown.view) else ())
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
        duration_minutes=round((shown.view.end - shown.view.start).total_seconds() / 60),
        slots=tuple(labels),
    )


async def notification_view(core: Core, n: Notification, actor: Actor) -> View | None:
    """The DM view for reminder, agenda, follow-up and booking-request notifications; None for others."""
    if n.kind not in DM_KINDS:
        return None
    if n.kind == "reminder":
        return await _reminder(core, n, actor)
    if n.kind == "agenda":
        agenda = await _agenda(core, n, actor)
        # Their shifts that day too (the shift service reads in a session of its own).
        return await with_shifts(core, n.practice_id, agenda, n.practitioner_id) if isinstance(agenda, Agenda) \
            else agenda
    if n.kind == FOLLOWUP_BOOKING:
        return await _booking_request(core, n, actor)
    state = await load_followup(core, n.practice_id, _first(n))
    if state is None:
        return _GONE
    return followup_view(actor, state)

