"""Conflict cards and the staff decisions behind their buttons, and the `conflicts` command.

A card names its conflict by the ConflictNotice id, never by the link: a button pressed on an old
card (a conflict decided since, or a newer conflict on the same copy) cannot act on something the
person never saw. Deciding needs the staff role and is audited with the chat user as the actor.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands.access import require_staff
from bot.commands.actions import AcceptCalendar, Action, KeepBooking, OpenReschedule, ShowDetails
from bot.commands.identity import Actor
from bot.commands.present import agenda_item, moment_label
from bot.views import AgendaItem, ConflictCard, ConflictList, DoubleBookingCard, Error, View
from sync.runtime.core import Core
from sync.services.appointment_views import practitioner_names, view_of
from sync.services.appointments import ACTIVE_STATUSES, AppointmentError
from sync.services.conflicts import ConflictNotFound, Decision, resolve_conflict
from sync.store.model import Appointment, Calendar, ChatIdentity, ConflictNotice, Link, Practice

__all__ = ["decide", "list_open", "notice_view"]

_DECIDED = {"keep_booking": "kept the booking", "accept_calendar": "accepted the calendar's time"}
_NOT_FOUND = "there is no such conflict; `conflicts` lists the open ones"


def span_label(start: datetime, end: datetime, tz: str) -> str:
    """'Tue 3 Mar 10:00–10:30' in zone `tz`."""
    local_end = end.astimezone(ZoneInfo(tz))
    same_day = start.astimezone(ZoneInfo(tz)).date() == local_end.date()
    return f"{moment_label(start, tz)}–" + (f"{local_end:%H:%M}" if same_day else moment_label(end, tz))


async def _who(session: AsyncSession, audit_name: str | None) -> str:
    """A display name for an audit actor ("slack:T1/U2"), or how the audit names it."""
    if not audit_name or ":" not in audit_name or "/" not in audit_name:
        return audit_name or "someone"
    platform, rest = audit_name.split(":", 1)
    workspace, user = rest.split("/", 1)
    name = await session.scalar(select(ChatIdentity.display_name).where(
        ChatIdentity.platform == platform, ChatIdentity.workspace_id == workspace, ChatIdentity.user_id == user))
    return name or audit_name


async def _mirror_card(
    session: AsyncSession, notice: ConflictNotice, appt: Appointment, tz: str, outcome: str
) -> ConflictCard:
    names = await practitioner_names(session, {appt.practitioner_id} if appt.practitioner_id else set())
    calendar = await session.get(Calendar, notice.calendar_id) if notice.calendar_id else None
    remote = (
        span_label(notice.remote_start, notice.remote_end, tz)
        if notice.remote_start is not None and notice.remote_end is not None else "changed by hand"
    )
    actions: tuple[Action, ...] = (ShowDetails(appt.id),)
    if not outcome:
        actions = (KeepBooking(notice.id), AcceptCalendar(notice.id), ShowDetails(appt.id))
    return ConflictCard(
        conflict_id=notice.id, appointment_id=appt.id, ref=appt.ref,
        practitioner=names.get(appt.practitioner_id or 0, "unassigned"), service=appt.service or "",
        calendar=(calendar.name if calendar is not None else None) or "a mirror calendar",
        booking_time=span_label(appt.start, appt.end, tz), calendar_time=remote, outcome=outcome, actions=actions,
    )


async def _booked_where(session: AsyncSession, appt: Appointment) -> str:
    if appt.source_calendar_id is None:
        return "booked in clinicbot"
    name = await session.scalar(select(Calendar.name).where(Calendar.id == appt.source_calendar_id))
    return f"booked on {name or 'a source calendar'}"


async def _double_card(
    session: AsyncSession, actor: Actor | None, notice: ConflictNotice, tz: str, outcome: str
) -> View:
    ids = [notice.appointment_id, notice.other_appointment_id or 0]
    appts = [await session.get(Appointment, i) for i in ids]
    found = [a for a in appts if a is not None and a.practice_id == notice.practice_id]
    if len(found) != 2:
        return Error("One of those appointments no longer exists.", kind="not_found")
    names = await practitioner_names(session, {a.practitioner_id for a in found if a.practitioner_id})
    bookings: list[tuple[AgendaItem, str]] = []
    for a in found:
        # Built for a staff viewer: a channel card has no single viewer, the handlers re-check on press.
        viewer = actor or Actor(a.practice_id, 0, "", "", frozenset({"staff"}))
        item = agenda_item(viewer, view_of(a, names), tz, with_details=False)
        acts: list[Action] = [ShowDetails(a.id)]
        if a.status in ACTIVE_STATUSES:
            acts.append(OpenReschedule(a.id, a.version))
        bookings.append((dataclasses.replace(item, client="", actions=tuple(acts)), await _booked_where(session, a)))
    still = all(a.status in ACTIVE_STATUSES for a in found) and found[0].start < found[1].end \
        and found[1].start < found[0].end and found[0].practitioner_id == found[1].practitioner_id
    if not outcome and not still:
        outcome = "No longer a double booking: one of them was moved or cancelled."
    return DoubleBookingCard(
        conflict_id=notice.id, practitioner=names.get(found[0].practitioner_id or 0, "unassigned"),
        bookings=tuple(bookings), outcome=outcome,
    )


async def _card(
    session: AsyncSession, notice: ConflictNotice, actor: Actor | None = None, outcome: str = ""
) -> View:
    practice = await session.get(Practice, notice.practice_id)
    tz = practice.timezone if practice is not None else "UTC"
    if notice.kind == "double_booking":
        return await _double_card(session, actor, notice, tz, outcome)
    appt = await session.get(Appointment, notice.appointment_id)
    if appt is None or appt.practice_id != notice.practice_id:
        return Error("That appointment no longer exists.", kind="not_found")
    if not outcome:
        outcome = await _stale(session, notice)
    return await _mirror_card(session, notice, appt, tz, outcome)


async def _stale(session: AsyncSession, notice: ConflictNotice) -> str:
    """Why this card's conflict is no longer open, or "" when it is."""
    if notice.resolved_at is not None:
        who = await _who(session, notice.resolved_by)
        return f"Already decided: {who} {_DECIDED.get(notice.decision or '', 'resolved it')}. Nothing changed."
    link = await session.get(Link, notice.link_id) if notice.link_id else None
    newer = await session.scalar(select(ConflictNotice.id).where(
        ConflictNotice.link_id == notice.link_id, ConflictNotice.id > notice.id).limit(1))
    if link is None or link.state != "conflict" or newer is not None:
        return "This conflict was already resolved; nothing changed. `conflicts` lists the open ones."
    return ""


async def notice_view(core: Core, conflict_id: int) -> View:
    """The card for one conflict as staff see it now (for notifications)."""
    async with core.store.session() as session:
        notice = await session.get(ConflictNotice, conflict_id)
        if notice is None:
            return Error("That conflict no longer exists.", kind="not_found")
        return await _card(session, notice)


async def _notice_for(session: AsyncSession, actor: Actor, conflict_id: int) -> ConflictNotice:
    notice = await session.get(ConflictNotice, conflict_id)
    if notice is None or notice.practice_id != actor.practice_id or notice.kind != "conflict":
        raise ConflictNotFound(_NOT_FOUND)
    return notice


async def decide(core: Core, actor: Actor, action: KeepBooking | AcceptCalendar) -> View:
    """Keep the booking or accept the calendar's time; the card comes back with the outcome."""
    require_staff(actor, "decide calendar conflicts")
    decision: Decision = "keep_booking" if isinstance(action, KeepBooking) else "accept_calendar"
    async with core.store.session() as session:
        notice = await _notice_for(session, actor, action.conflict_id)
        stale = await _stale(session, notice)
        if stale:
            return await _card(session, notice, actor, stale)
        link_id = notice.link_id
    assert link_id is not None
    try:
        await resolve_conflict(core, link_id, decision, actor.audit_name)
    except AppointmentError:  # decided by someone else in between
        async with core.store.session() as session:
            return await _card(session, await _notice_for(session, actor, action.conflict_id), actor)
    async with core.store.session() as session:
        notice = await _notice_for(session, actor, action.conflict_id)
        appt = await session.get(Appointment, notice.appointment_id)
        practice = await session.get(Practice, actor.practice_id)
        tz = practice.timezone if practice is not None else "UTC"
        when = span_label(appt.start, appt.end, tz) if appt is not None else ""
        if decision == "keep_booking":
            outcome = f"{actor.display} kept the booking ({when}); the calendar copy is being put back."
        else:
            outcome = (f"{actor.display} accepted the calendar's time: moved to {when} at the booking "
                       "system and on every calendar.")
        return await _card(session, notice, actor, outcome)


async def list_open(core: Core, actor: Actor) -> View:
    """Open conflicts of the actor's practice: hand-edited copies, then double bookings."""
    require_staff(actor, "see calendar conflicts")
    async with core.store.session() as session:
        rows = (await session.scalars(
            select(ConflictNotice).outerjoin(Link, Link.id == ConflictNotice.link_id)
            .where(ConflictNotice.practice_id == actor.practice_id, ConflictNotice.resolved_at.is_(None),
                   ConflictNotice.kind.in_(("conflict", "double_booking")))  # outside_shift: told, not decided
            .order_by(ConflictNotice.id.desc()).limit(200))).all()
        cards: list[ConflictCard | DoubleBookingCard] = []
        seen: set[object] = set()
        for notice in rows:  # newest first: one card per copy, one per pair
            key: object = ("link", notice.link_id) if notice.kind == "conflict" else (
                "pair", frozenset((notice.appointment_id, notice.other_appointment_id)))
            if key in seen:
                continue
            seen.add(key)
            card = await _card(session, notice, actor)
            if isinstance(card, (ConflictCard, DoubleBookingCard)) and not card.outcome:
                cards.append(card)
    cards.sort(key=lambda c: c.conflict_id)
    return ConflictList(cards=tuple(cards[:20]))
