"""Conflict cards and the staff decisions behind their buttons, and the `conflicts` command.

A card names its conflict by the ConflictNotice id, never by the link: a button pressed on an old
card (a conflict decided since, or a newer conflict on the same copy) cannot act on something the
person never saw. Deciding needs the staff role and is audited with the chat user as the actor.
What a card shows is read by `sync.services.conflict_views`; this module checks roles and draws.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.commands.access import require_staff
from bot.commands.actions import AcceptCalendar, Action, KeepBooking, OpenReschedule, ShowDetails
from bot.commands.identity import Actor
from bot.commands.present import agenda_item, moment_label
from bot.views import AgendaItem, ConflictCard, ConflictList, DoubleBookingCard, Error, View
from sync.runtime.core import Core
from sync.services.appointments import ACTIVE_STATUSES
from sync.services.conflict_views import (
    ConflictState,
    DoubleBookingFacts,
    MirrorConflictFacts,
    decide_conflict,
    load_conflict,
    open_conflicts,
)
from sync.services.conflicts import Decision

__all__ = ["decide", "list_open", "notice_view"]


def span_label(start: datetime, end: datetime, tz: str) -> str:
    """'Tue 3 Mar 10:00–10:30' in zone `tz`."""
    local_end = end.astimezone(ZoneInfo(tz))
    same_day = start.astimezone(ZoneInfo(tz)).date() == local_end.date()
    return f"{moment_label(start, tz)}–" + (f"{local_end:%H:%M}" if same_day else moment_label(end, tz))


def _mirror_card(state: ConflictState, facts: MirrorConflictFacts, outcome: str) -> ConflictCard:
    appt, tz = facts.appointment, state.timezone
    remote = (
        span_label(facts.remote_start, facts.remote_end, tz)
        if facts.remote_start is not None and facts.remote_end is not None else "changed by hand"
    )
    actions: tuple[Action, ...] = (ShowDetails(appt.id),)
    if not outcome:
        actions = (KeepBooking(state.conflict_id), AcceptCalendar(state.conflict_id), ShowDetails(appt.id))
    return ConflictCard(
        conflict_id=state.conflict_id, appointment_id=appt.id, ref=appt.ref,
        practitioner=appt.practitioner, service=appt.service, calendar=facts.calendar,
        booking_time=span_label(appt.start, appt.end, tz), calendar_time=remote, outcome=outcome, actions=actions,
    )


def _double_card(state: ConflictState, facts: DoubleBookingFacts, actor: Actor | None, outcome: str) -> View:
    bookings: list[tuple[AgendaItem, str]] = []
    for a, where in facts.bookings:
        # Built for a staff viewer: a channel card has no single viewer, the handlers re-check on press.
        viewer = actor or Actor(a.practice_id, 0, "", "", frozenset({"staff"}))
        item = agenda_item(viewer, a, state.timezone, with_details=False)
        acts: list[Action] = [ShowDetails(a.id)]
        if a.status in ACTIVE_STATUSES:
            acts.append(OpenReschedule(a.id, a.version))
        bookings.append((dataclasses.replace(item, client="", actions=tuple(acts)), where))
    if not outcome and not facts.still:
        outcome = "No longer a double booking: one of them was moved or cancelled."
    return DoubleBookingCard(
        conflict_id=state.conflict_id, practitioner=facts.practitioner, bookings=tuple(bookings), outcome=outcome,
    )


def _card(state: ConflictState, actor: Actor | None = None, outcome: str = "") -> View:
    if state.missing or state.facts is None:
        return Error(state.missing or "That conflict no longer exists.", kind="not_found")
    if isinstance(state.facts, DoubleBookingFacts):
        return _double_card(state, state.facts, actor, outcome)
    return _mirror_card(state, state.facts, outcome or state.stale)


async def notice_view(core: Core, conflict_id: int) -> View:
    """The card for one conflict as staff see it now (for notifications)."""
    state = await load_conflict(core, conflict_id)
    if state is None:
        return Error("That conflict no longer exists.", kind="not_found")
    return _card(state)


async def decide(core: Core, actor: Actor, action: KeepBooking | AcceptCalendar) -> View:
    """Keep the booking or accept the calendar's time; the card comes back with the outcome."""
    require_staff(actor, "decide calendar conflicts")
    decision: Decision = "keep_booking" if isinstance(action, KeepBooking) else "accept_calendar"
    done = await decide_conflict(core, actor.practice_id, action.conflict_id, decision, actor.audit_name)
    if done.result != "decided":  # no longer open, or decided by someone else in between
        return _card(done.state, actor)
    tz = done.state.timezone
    when = span_label(done.start, done.end, tz) if done.start is not None and done.end is not None else ""
    if decision == "keep_booking":
        outcome = f"{actor.display} kept the booking ({when}); the calendar copy is being put back."
    else:
        outcome = (f"{actor.display} accepted the calendar's time: moved to {when} at the booking "
                   "system and on every calendar.")
    return _card(done.state, actor, outcome)


async def list_open(core: Core, actor: Actor) -> View:
    """Open conflicts of the actor's practice: hand-edited copies, then double bookings."""
    require_staff(actor, "see calendar conflicts")
    cards: list[ConflictCard | DoubleBookingCard] = []
    for state in await open_conflicts(core, actor.practice_id):
        card = _card(state, actor)
        if isinstance(card, (ConflictCard, DoubleBookingCard)) and not card.outcome:
            cards.append(card)
    cards.sort(key=lambda c: c.conflict_id)
    return ConflictList(cards=tuple(cards[:20]))
