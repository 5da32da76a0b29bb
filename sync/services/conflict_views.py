"""Conflicts as the chat cards show them, and the staff decision behind their buttons.

A card names its conflict by the ConflictNotice id, never by the link: a button pressed on an old
card (a conflict decided since, or a newer conflict on the same copy) cannot act on something the
person never saw. Each loader reads in one transaction and returns plain data; the front ends
(bot.commands.conflicts) check the person's role and build the cards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.core import Core
from sync.services.appointment_views import AppointmentView, practitioner_names, view_of
from sync.services.appointments import ACTIVE_STATUSES, AppointmentError
from sync.services.conflicts import ConflictNotFound, Decision, resolve_conflict
from sync.store.model import Appointment, Calendar, ChatIdentity, ConflictNotice, Link, Practice

__all__ = [
    "ConflictDecision",
    "ConflictState",
    "DoubleBookingFacts",
    "MirrorConflictFacts",
    "decide_conflict",
    "load_conflict",
    "open_conflicts",
]

_DECIDED = {"keep_booking": "kept the booking", "accept_calendar": "accepted the calendar's time"}
_NOT_FOUND = "there is no such conflict; `conflicts` lists the open ones"


@dataclass(frozen=True, slots=True)
class MirrorConflictFacts:
    """A copy on a mirror calendar edited by hand."""

    appointment: AppointmentView
    #: The mirror calendar's name, or "a mirror calendar".
    calendar: str
    #: The copy's time as found on the calendar (None when it was changed otherwise).
    remote_start: datetime | None
    remote_end: datetime | None


@dataclass(frozen=True, slots=True)
class DoubleBookingFacts:
    """Two bookings of one practitioner at the same time."""

    practitioner: str
    #: Each appointment and where it was booked ("booked on Front desk", "booked in clinicbot").
    bookings: tuple[tuple[AppointmentView, str], ...]
    #: Both still active, still overlapping, still with the same practitioner.
    still: bool


@dataclass(frozen=True, slots=True)
class ConflictState:
    """One conflict as it stands now."""

    conflict_id: int
    #: "conflict" (a hand-edited copy) or "double_booking".
    kind: str
    timezone: str
    facts: MirrorConflictFacts | DoubleBookingFacts | None
    #: Why there is nothing to show ("That appointment no longer exists."), or "".
    missing: str = ""
    #: Why a hand-edited copy's conflict is no longer open ("Already decided: ..."), or "".
    stale: str = ""


@dataclass(frozen=True, slots=True)
class ConflictDecision:
    """A staff decision's result: "stale" (the card's conflict is no longer open: nothing changed),
    "raced" (decided by someone else in between), or "decided", with the appointment's time after it."""

    state: ConflictState
    result: str
    start: datetime | None = None
    end: datetime | None = None


async def _who(session: AsyncSession, audit_name: str | None) -> str:
    """A display name for an audit actor ("slack:T1/U2"), or how the audit names it."""
    if not audit_name or ":" not in audit_name or "/" not in audit_name:
        return audit_name or "someone"
    platform, rest = audit_name.split(":", 1)
    workspace, user = rest.split("/", 1)
    name = await session.scalar(select(ChatIdentity.display_name).where(
        ChatIdentity.platform == platform, ChatIdentity.workspace_id == workspace, ChatIdentity.user_id == user))
    return name or audit_name


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


async def _booked_where(session: AsyncSession, appt: Appointment) -> str:
    if appt.source_calendar_id is None:
        return "booked in clinicbot"
    name = await session.scalar(select(Calendar.name).where(Calendar.id == appt.source_calendar_id))
    return f"booked on {name or 'a source calendar'}"


async def _double(session: AsyncSession, notice: ConflictNotice, tz: str) -> ConflictState:
    ids = [notice.appointment_id, notice.other_appointment_id or 0]
    appts = [await session.get(Appointment, i) for i in ids]
    found = [a for a in appts if a is not None and a.practice_id == notice.practice_id]
    if len(found) != 2:
        return ConflictState(notice.id, notice.kind, tz, None, missing="One of those appointments no longer exists.")
    names = await practitioner_names(session, {a.practitioner_id for a in found if a.practitioner_id})
    bookings = tuple([(view_of(a, names), await _booked_where(session, a)) for a in found])
    still = all(a.status in ACTIVE_STATUSES for a in found) and found[0].start < found[1].end \
        and found[1].start < found[0].end and found[0].practitioner_id == found[1].practitioner_id
    facts = DoubleBookingFacts(names.get(found[0].practitioner_id or 0, "unassigned"), bookings, still)
    return ConflictState(notice.id, notice.kind, tz, facts)


async def _state(session: AsyncSession, notice: ConflictNotice) -> ConflictState:
    practice = await session.get(Practice, notice.practice_id)
    tz = practice.timezone if practice is not None else "UTC"
    if notice.kind == "double_booking":
        return await _double(session, notice, tz)
    stale = await _stale(session, notice)
    appt = await session.get(Appointment, notice.appointment_id)
    if appt is None or appt.practice_id != notice.practice_id:
        return ConflictState(notice.id, notice.kind, tz, None, missing="That appointment no longer exists.",
                             stale=stale)
    names = await practitioner_names(session, {appt.practitioner_id} if appt.practitioner_id else set())
    calendar = await session.get(Calendar, notice.calendar_id) if notice.calendar_id else None
    facts = MirrorConflictFacts(
        view_of(appt, names), (calendar.name if calendar is not None else None) or "a mirror calendar",
        notice.remote_start, notice.remote_end,
    )
    return ConflictState(notice.id, notice.kind, tz, facts, stale=stale)


async def load_conflict(core: Core, conflict_id: int) -> ConflictState | None:
    """One conflict as it stands now (for notifications); None when it no longer exists."""
    async with core.store.session() as session:
        notice = await session.get(ConflictNotice, conflict_id)
        return await _state(session, notice) if notice is not None else None


async def open_conflicts(core: Core, practice_id: int) -> tuple[ConflictState, ...]:
    """The practice's undecided conflicts, newest first: one per hand-edited copy, one per pair of bookings."""
    async with core.store.session() as session:
        rows = (await session.scalars(
            select(ConflictNotice).outerjoin(Link, Link.id == ConflictNotice.link_id)
            .where(ConflictNotice.practice_id == practice_id, ConflictNotice.resolved_at.is_(None),
                   ConflictNotice.kind.in_(("conflict", "double_booking")))  # outside_shift: told, not decided
            .order_by(ConflictNotice.id.desc()).limit(200))).all()
        states: list[ConflictState] = []
        seen: set[object] = set()
        for notice in rows:
            key: object = ("link", notice.link_id) if notice.kind == "conflict" else (
                "pair", frozenset((notice.appointment_id, notice.other_appointment_id)))
            if key in seen:
                continue
            seen.add(key)
            states.append(await _state(session, notice))
        return tuple(states)


async def _notice_for(session: AsyncSession, practice_id: int, conflict_id: int) -> ConflictNotice:
    notice = await session.get(ConflictNotice, conflict_id)
    if notice is None or notice.practice_id != practice_id or notice.kind != "conflict":
        raise ConflictNotFound(_NOT_FOUND)
    return notice


async def decide_conflict(
    core: Core, practice_id: int, conflict_id: int, decision: Decision, actor: str
) -> ConflictDecision:
    """Keep the booking or accept the calendar's time for the hand-edited copy of conflict card
    `conflict_id`. Raises ConflictNotFound when the practice has no such conflict."""
    async with core.store.session() as session:
        notice = await _notice_for(session, practice_id, conflict_id)
        state = await _state(session, notice)
        if state.stale:
            return ConflictDecision(state, "stale")
        link_id = notice.link_id
    assert link_id is not None
    try:
        await resolve_conflict(core, link_id, decision, actor)
    except AppointmentError:  # decided by someone else in between
        async with core.store.session() as session:
            return ConflictDecision(await _state(session, await _notice_for(session, practice_id, conflict_id)),
                                    "raced")
    async with core.store.session() as session:
        notice = await _notice_for(session, practice_id, conflict_id)
        appt = await session.get(Appointment, notice.appointment_id)
        state = await _state(session, notice)
        return ConflictDecision(state, "decided", appt.start if appt else None, appt.end if appt else None)
