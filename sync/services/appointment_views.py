"""Appointments as the chat front ends show them: read models (plain, frozen data with the client's
fields decrypted and the practitioner's name, series and read-only refusals worked out) and the
loaders that build them, each in one transaction with the queries the answer needs and no more.

The front ends (bot.commands) turn these into views; they never see a row or a session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.engine import series
from sync.integrations.sources import read_only_calendars, read_only_refusal, refuse_read_only
from sync.runtime.core import Core
from sync.services.appointments import get_by_ref, list_day
from sync.services.errors import Denied
from sync.services.history import last_source_change
from sync.services.identities import PersonRef, PractitionerRef, practitioner_named
from sync.services.locations import find_location
from sync.services.practices import practitioner_choices
from sync.services.shifts import ShiftView, day_bounds, shifts_in
from sync.services.work_events import WorkCalendars, work_calendars
from sync.store.model import Appointment, Calendar, Link, Location, OutboxOp, Practice, Practitioner

__all__ = [
    "AgendaDay",
    "AppointmentDetails",
    "AppointmentView",
    "LoadedAppointment",
    "NoPractice",
    "RescheduleChoices",
    "details_of",
    "load_agenda",
    "load_appointment",
    "load_details",
    "load_one",
    "load_reschedule",
    "moment_label",
    "practice_of",
    "practitioner_names",
    "view_of",
]


class NoPractice(Denied):
    """The person's practice no longer exists."""


@dataclass(frozen=True, slots=True)
class AppointmentView:
    """One appointment, or one visit of a recurring series, as chat shows it."""

    id: int
    ref: str
    version: int
    practice_id: int
    practitioner_id: int | None
    #: The practitioner's name, or "unassigned".
    practitioner: str
    start: datetime
    end: datetime
    status: str
    #: The client's name, else the event's title, else "(no name)".
    client: str
    service: str
    location: str
    notes: str
    #: The client's phone (decrypted), for the details card.
    phone: str
    #: The row stands for a whole series (a visit of it is not a series).
    is_series: bool
    #: Why chat may not change it (it stands for a whole series), or None.
    change_refusal: str | None
    #: Why its source cannot be written from chat (a read-only feed), or None.
    read_only: str | None


@dataclass(frozen=True, slots=True)
class LoadedAppointment:
    """An appointment and the zone its practice shows times in."""

    view: AppointmentView
    timezone: str


@dataclass(frozen=True, slots=True)
class AppointmentDetails:
    """An appointment with where its copies are and what is worth saying about it."""

    view: AppointmentView
    timezone: str
    #: (calendar label, link state) per calendar that holds a copy; "pending" while the outbox still writes it.
    calendars: tuple[tuple[str, str], ...]
    #: The series' pattern and the read-only refusal, as one sentence or "".
    note: str


@dataclass(frozen=True, slots=True)
class RescheduleChoices:
    """What the reschedule form needs: the appointment, the zone and the practitioners to choose from."""

    view: AppointmentView
    timezone: str
    #: (id, name) of the practice's active practitioners.
    practitioners: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class AgendaDay:
    """A day's appointments for a practice (or one practitioner)."""

    timezone: str
    today: date
    day: date
    practitioner: PractitionerRef | None
    appointments: tuple[AppointmentView, ...]
    #: The location the day was filtered by (`today at Northside`), or None.
    location: Location | None = None
    #: The work calendars shown beside the day, loaded in the same transaction (`with_work`), or None.
    work: WorkCalendars | None = None
    #: The day's published shifts (of the day's practitioner when there is one), loaded in the same
    #: transaction (`with_shifts`), or None.
    shifts: tuple[ShiftView, ...] | None = None


def view_of(appt: Appointment, names: dict[int, str], read_only: str | None = None) -> AppointmentView:
    """The read model of a row (or a series visit's transient copy); `names` maps practitioner ids to names."""
    return AppointmentView(
        id=appt.id,
        ref=appt.ref,
        version=appt.version,
        practice_id=appt.practice_id,
        practitioner_id=appt.practitioner_id,
        practitioner=names.get(appt.practitioner_id or 0, "unassigned"),
        start=appt.start,
        end=appt.end,
        status=appt.status,
        client=appt.client_name or appt.title or "(no name)",
        service=appt.service or "",
        location=appt.location_text or "",
        notes=appt.notes or "",
        phone=appt.client_phone or "",
        is_series=series.is_series(appt),
        change_refusal=series.refuse_change(appt),
        read_only=read_only,
    )


async def practitioner_names(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    """id -> name of the given practitioners (one query; none for no ids)."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = await session.execute(_NAMES, {"ids": list(wanted)})
    return {int(r[0]): str(r[1]) for r in rows}


#: Statements every agenda or details card runs, built once.
_NAMES = select(Practitioner.id, Practitioner.name).where(Practitioner.id.in_(bindparam("ids", expanding=True)))
#: A details card's calendars holding copies: a link stays "ok" while the outbox still has to write
#: the latest change to that calendar, and right after a reschedule or cancel the card must say so.
_QUEUED = (
    select(OutboxOp.id)
    .where(OutboxOp.appointment_id == bindparam("appointment_id"), OutboxOp.calendar_id == Calendar.id,
           OutboxOp.status == "pending")
    .exists()
)
_COPIES = (
    select(Calendar.name, Calendar.role, Link.state, _QUEUED)
    .join(Link, Link.calendar_id == Calendar.id)
    .where(Link.appointment_id == bindparam("appointment_id"))
    .order_by(Calendar.id)
)


async def practice_of(session: AsyncSession, practice_id: int) -> Practice:
    """The practice with that id; raises NoPractice when it is gone."""
    practice = await session.get(Practice, practice_id)
    if practice is None:
        raise NoPractice("your practice no longer exists; ask an admin")
    return practice


async def _one(session: AsyncSession, practice_id: int, appointment_id: int, visit_start: datetime | None
               ) -> tuple[Appointment, AppointmentView]:
    appt = await get_by_ref(session, practice_id, appointment_id)
    if visit_start is not None:
        appt = series.visit_at(appt, visit_start) or appt
    names = await practitioner_names(session, [appt.practitioner_id])
    return appt, view_of(appt, names, await refuse_read_only(session, appt))


async def load_one(
    session: AsyncSession, practice_id: int, appointment_id: int, visit_start: datetime | None = None
) -> tuple[Appointment, LoadedAppointment]:
    """`load_appointment` in `session`, with the row it read (a series visit's transient copy for a visit)."""
    practice = await practice_of(session, practice_id)
    appt, view = await _one(session, practice_id, appointment_id, visit_start)
    return appt, LoadedAppointment(view, practice.timezone)


async def load_appointment(
    core: Core, practice_id: int, appointment_id: int, visit_start: datetime | None = None
) -> LoadedAppointment:
    """One appointment of the practice (for a series with `visit_start`, that visit when there is one).
    Raises AppointmentNotFound, NoPractice."""
    async with core.store.session() as session:
        return (await load_one(session, practice_id, appointment_id, visit_start))[1]


async def details_of(session: AsyncSession, appt: Appointment, tz: str) -> AppointmentDetails:
    """The details of a loaded row (or a series visit's copy) in `session`."""
    names = await practitioner_names(session, [appt.practitioner_id])
    rows = await session.execute(_COPIES, {"appointment_id": appt.id})
    calendars = tuple((f"{r[0] or 'calendar'} ({r[1]})", "pending" if r[3] else str(r[2])) for r in rows)
    read_only = await refuse_read_only(session, appt)
    # A visit is a transient copy of its series row; the row itself (in the session) says since when.
    series_row = await session.get(Appointment, appt.id) if series.is_series(appt) else None
    changed = await last_source_change(session, appt.id)
    told = ""
    if changed is not None:  # the feed or calendar did it, not a person in clinicbot: say so
        where = f"its {'read-only feed' if changed.read_only else 'calendar'} {changed.calendar}"
        was = f" (was {moment_label(changed.was_start, tz)})" if changed.was_start else ""
        told = f"{changed.verb.capitalize()} by {where} on {moment_label(changed.at, tz)}{was}."
    note = " ".join(filter(None, (series.describe(series_row or appt, tz), told,
                                  f"{read_only}." if read_only else "")))
    return AppointmentDetails(view_of(appt, names, read_only), tz, calendars, note)


def moment_label(moment: datetime, tz: str) -> str:
    """'Tue 3 Mar 15:00' in zone `tz`: how every chat card writes a moment."""
    local = moment.astimezone(ZoneInfo(tz))
    return f"{local:%a} {local.day} {local:%b %H:%M}"


async def load_details(
    core: Core, practice_id: int, appointment_id: int, visit_start: datetime | None = None
) -> AppointmentDetails:
    """`load_appointment` with the calendars holding copies and the series' pattern."""
    async with core.store.session() as session:
        practice = await practice_of(session, practice_id)
        appt = await get_by_ref(session, practice_id, appointment_id)
        if visit_start is not None:
            appt = series.visit_at(appt, visit_start) or appt
        return await details_of(session, appt, practice.timezone)


async def load_reschedule(core: Core, practice_id: int, appointment_id: int) -> RescheduleChoices:
    """An appointment with the practitioners it could be given to. Raises AppointmentNotFound, NoPractice."""
    async with core.store.session() as session:
        practice = await practice_of(session, practice_id)
        _, view = await _one(session, practice_id, appointment_id, None)
        choices = await practitioner_choices(session, practice.id)
        return RescheduleChoices(view, practice.timezone, tuple(choices))


async def load_agenda(
    core: Core, practice_id: int, platform: str, *, day: Callable[[date], date], who: PersonRef | None = None,
    practitioner_id: int | None = None, location: str | None = None, with_work: bool = False,
    with_shifts: bool = False,
) -> AgendaDay:
    """The day `day(today)` (today in the practice's zone) for the practitioner named by `who`, else the one
    with `practitioner_id`, else everyone. `with_work`: also the work calendars shown beside it (of the
    day's practitioner when there is one), in the same transaction; `with_shifts`: the day's published
    shifts (of that practitioner), likewise. Raises NotLinked, NoSuchPractitioner, NoPractice."""
    async with core.store.session() as session:
        practice = await practice_of(session, practice_id)
        tz = practice.timezone
        today = core.clock().astimezone(ZoneInfo(tz)).date()
        chosen = day(today)
        practitioner: PractitionerRef | None = None
        if who is not None:
            practitioner = await practitioner_named(session, practice_id, platform, who)
        elif practitioner_id is not None:
            mine = await session.get(Practitioner, practitioner_id)
            practitioner = PractitionerRef(mine.id, mine.name) if mine is not None else None
        rows = await list_day(session, practice_id, chosen, tz, practitioner.id if practitioner else practitioner_id,
                              with_outcomes=True)
        place = await find_location(session, practice_id, location) if location else None
        if place is not None:
            rows = [a for a in rows if a.location_id == place.id]
        # One practitioner's day: their name is known already (their series' visits are theirs too).
        known = {practitioner.id: practitioner.name} if practitioner is not None else {}
        names = known | await practitioner_names(session, [a.practitioner_id for a in rows
                                                           if a.practitioner_id not in known])
        read_only = await read_only_calendars(session, {a.source_calendar_id for a in rows})
        views = tuple(
            view_of(a, names, read_only_refusal(a.ref) if a.source_calendar_id in read_only else None) for a in rows
        )
        work = await work_calendars(session, practice_id, practitioner.id if practitioner else None) if with_work \
            else None
        shifts = None
        if with_shifts:
            start, end = day_bounds(chosen, tz)
            shifts = tuple(await shifts_in(session, practice_id, start, end,
                                           practitioner.id if practitioner else None))
        return AgendaDay(tz, today, chosen, practitioner, views, place, work, shifts)
