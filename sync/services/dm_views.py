"""What a practitioner's (or staff's) direct messages show: reminders, the day's agenda, follow-up
cards and follow-up booking requests, as read models.

Read fresh at send time (a notification carries ids, not data), each in one transaction. Times are
in the practitioner's own zone (else the practice's); the client is shown by the practice's DM
projection (initials unless the practice chose otherwise). The front ends (bot.commands) decide
the buttons from the reader's roles and turn these into views; they never see a row or a session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.engine.projection import PROJECTIONS, initials
from sync.engine.series import visit
from sync.runtime.core import Core
from sync.services.appointment_views import AppointmentView, practitioner_names, view_of
from sync.services.appointments import list_day
from sync.store.model import Appointment, AuditEntry, ChatIdentity, Practice, Practitioner

__all__ = [
    "DM_PROJECTION_KEY",
    "MARK_ACTIONS",
    "REQUESTED",
    "DmAgenda",
    "DmAppointment",
    "FollowUpState",
    "Recorded",
    "dm_client",
    "followup_state",
    "load_booking_request",
    "load_dm_agenda",
    "load_followup",
    "load_reminder",
    "person_zone",
]

#: Practice.settings key: what practitioner DMs show of the client ("busy", "initials", "full").
DM_PROJECTION_KEY: Final = "dm_projection"
#: The audit actions of a follow-up answer: attended, no-show; and a follow-up booking request.
MARK_ACTIONS: Final = ("appointment.completed", "appointment.no_show")
REQUESTED: Final = "appointment.followup_requested"


@dataclass(frozen=True, slots=True)
class DmAppointment:
    """An appointment as a DM shows it."""

    view: AppointmentView
    #: The client by the practice's DM projection: initials by default, "client", or the full name.
    client: str
    #: The zone the DM writes times in: the practitioner's own when valid, else the practice's.
    timezone: str
    #: The practice's zone.
    practice_timezone: str


@dataclass(frozen=True, slots=True)
class DmAgenda:
    """A practitioner's day for their morning DM."""

    practitioner: str
    timezone: str
    appointments: tuple[DmAppointment, ...]


@dataclass(frozen=True, slots=True)
class Recorded:
    """An audit entry worth telling: who (their chat name when known) and when."""

    who: str
    at: datetime


@dataclass(frozen=True, slots=True)
class FollowUpState:
    """A follow-up card's facts as they stand now."""

    appointment: DmAppointment
    #: Who marked it attended or no-show, and when (while it is marked).
    marked: Recorded | None
    #: Who asked staff to book a follow-up, and when.
    requested: Recorded | None


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


async def _dm(session: AsyncSession, practice: Practice, appt: Appointment, tz: str,
              names: dict[int, str] | None = None) -> DmAppointment:
    if names is None:
        names = await practitioner_names(session, {appt.practitioner_id} if appt.practitioner_id else set())
    return DmAppointment(view_of(appt, names), dm_client(practice, appt), tz, practice.timezone)


async def _appointment(session: AsyncSession, practice_id: int, appointment_id: int | None
                       ) -> tuple[Practice, Appointment] | None:
    practice = await session.get(Practice, practice_id)
    appt = await session.get(Appointment, appointment_id) if appointment_id else None
    if practice is None or appt is None or appt.practice_id != practice_id:
        return None
    return practice, appt


async def _in_own_zone(session: AsyncSession, practice: Practice, appt: Appointment) -> DmAppointment:
    person = await session.get(Practitioner, appt.practitioner_id) if appt.practitioner_id else None
    return await _dm(session, practice, appt, person_zone(person, practice))


async def load_reminder(
    core: Core, practice_id: int, appointment_id: int | None, visit_start: datetime | None = None
) -> DmAppointment | None:
    """The appointment a reminder is about (for a series, its visit at `visit_start`), in the
    practitioner's zone; None when it is gone."""
    async with core.store.session() as session:
        found = await _appointment(session, practice_id, appointment_id)
        if found is None:
            return None
        practice, appt = found
        if visit_start is not None:  # one visit of a recurring series
            appt = visit(appt, visit_start)
        return await _in_own_zone(session, practice, appt)


async def load_booking_request(core: Core, practice_id: int, appointment_id: int | None) -> DmAppointment | None:
    """The appointment a follow-up booking request is about, in the practice's zone; None when gone."""
    async with core.store.session() as session:
        found = await _appointment(session, practice_id, appointment_id)
        if found is None:
            return None
        practice, appt = found
        return await _dm(session, practice, appt, practice.timezone)


async def load_dm_agenda(
    core: Core, practice_id: int, practitioner_id: int | None, day: date | None
) -> DmAgenda | None:
    """The practitioner's appointments on `day` (in their zone; none without a day); None when they
    left the practice."""
    async with core.store.session() as session:
        practice = await session.get(Practice, practice_id)
        person = await session.get(Practitioner, practitioner_id) if practitioner_id else None
        if practice is None or person is None or person.practice_id != practice.id:
            return None
        tz = person_zone(person, practice)
        rows = await list_day(session, practice.id, day, tz, person.id) if day is not None else []
        names = await practitioner_names(session, [a.practitioner_id for a in rows])
        items = tuple([await _dm(session, practice, a, tz, names) for a in rows])
        return DmAgenda(person.name, tz, items)


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


async def last_entry(session: AsyncSession, appointment_id: int, actions: tuple[str, ...]) -> AuditEntry | None:
    """The appointment's latest audit entry with one of `actions`."""
    return await session.scalar(
        select(AuditEntry)
        .where(AuditEntry.appointment_id == appointment_id, AuditEntry.action.in_(actions))
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    )


async def _recorded(session: AsyncSession, entry: AuditEntry | None) -> Recorded | None:
    return Recorded(await _who(session, entry.actor), entry.at) if entry is not None else None


async def followup_state(session: AsyncSession, practice: Practice, appt: Appointment) -> FollowUpState:
    """The follow-up card's facts for a row loaded in `session`."""
    shown = await _in_own_zone(session, practice, appt)
    marked = await last_entry(session, appt.id, MARK_ACTIONS) if appt.status in ("completed", "no_show") else None
    requested = await last_entry(session, appt.id, (REQUESTED,))
    return FollowUpState(shown, await _recorded(session, marked), await _recorded(session, requested))


async def load_followup(core: Core, practice_id: int, appointment_id: int | None) -> FollowUpState | None:
    """The follow-up card of an appointment as it stands now; None when it is gone."""
    async with core.store.session() as session:
        found = await _appointment(session, practice_id, appointment_id)
        if found is None:
            return None
        return await followup_state(session, *found)
