"""Appointments -> view items: labels in the practice's zone, and the buttons the actor may press."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands.access import can_change
from bot.commands.actions import Action, AskCancel, OpenReschedule, ShowDetails
from bot.commands.identity import Actor
from bot.views import AgendaItem, AppointmentDetail
from sync.engine.series import describe, is_series
from sync.integrations.sources import refuse_read_only
from sync.services.appointments import ACTIVE_STATUSES
from sync.services.history import last_source_change
from sync.store.model import Appointment, Calendar, Link, OutboxOp, Practitioner

__all__ = [
    "agenda_item", "appointment_detail", "day_label", "details_action", "moment_label", "practitioner_names",
]


def day_label(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def moment_label(moment: datetime, tz: str) -> str:
    """'Tue 3 Mar 15:00' in zone `tz`."""
    local = moment.astimezone(ZoneInfo(tz))
    return f"{local:%a} {local.day} {local:%b %H:%M}"


async def practitioner_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Practitioner.id, Practitioner.name).where(Practitioner.id.in_(ids)))
    return {int(r[0]): str(r[1]) for r in rows}


def agenda_item(
    actor: Actor,
    appt: Appointment,
    tz: str,
    names: dict[int, str],
    with_details: bool = True,
    read_only: bool = False,
) -> AgendaItem:
    """One appointment as a list item; `read_only` (its source cannot be written) hides move and cancel."""
    zone = ZoneInfo(tz)
    start, end = appt.start.astimezone(zone), appt.end.astimezone(zone)
    label = f"{start:%H:%M}–{end:%H:%M}" if start.date() == end.date() else f"{start:%H:%M}–{end:%a %H:%M}"
    actions: list[Action] = []
    if appt.status in ACTIVE_STATUSES and can_change(actor, appt) and not is_series(appt) and not read_only:
        actions += [OpenReschedule(appt.id, appt.version), AskCancel(appt.id, appt.version)]
    if with_details:
        actions.append(details_action(appt))
    return AgendaItem(
        appointment_id=appt.id,
        ref=appt.ref,
        version=appt.version,
        start=start,
        end=end,
        time_label=label,
        practitioner=names.get(appt.practitioner_id or 0, "unassigned"),
        client=appt.client_name or appt.title or "(no name)",
        service=appt.service or "",
        status=appt.status,
        actions=tuple(actions),
    )


def details_action(appt: Appointment) -> ShowDetails:
    """The Details button; for a visit of a series it names the visit, which shares the series' id."""
    return ShowDetails(appt.id, appt.start if is_series(appt) else None)


async def appointment_detail(
    session: AsyncSession, actor: Actor, appt: Appointment, tz: str, notice: str = ""
) -> AppointmentDetail:
    names = await practitioner_names(session, {appt.practitioner_id} if appt.practitioner_id else set())
    rows = await session.execute(
        select(Calendar.id, Calendar.name, Calendar.role, Link.state)
        .join(Link, Link.calendar_id == Calendar.id)
        .where(Link.appointment_id == appt.id)
        .order_by(Calendar.id)
    )
    # A link stays "ok" while the outbox still has to write the latest change to that calendar:
    # right after a reschedule or cancel the card must say so, not claim the copy is in step.
    queued = set(
        (
            await session.scalars(
                select(OutboxOp.calendar_id).where(OutboxOp.appointment_id == appt.id, OutboxOp.status == "pending")
            )
        ).all()
    )
    calendars = tuple((f"{r[1] or 'calendar'} ({r[2]})", "pending" if r[0] in queued else str(r[3])) for r in rows)
    read_only = await refuse_read_only(session, appt)
    # A visit is a transient copy of its series row; the row itself (in the session) says since when.
    series_row = await session.get(Appointment, appt.id) if is_series(appt) else None
    item = agenda_item(actor, appt, tz, names, with_details=False, read_only=read_only is not None)
    changed = await last_source_change(session, appt.id)
    told = ""
    if changed is not None:  # the feed or calendar did it, not a person in clinicbot: say so
        where = f"its {'read-only feed' if changed.read_only else 'calendar'} {changed.calendar}"
        was = f" (was {moment_label(changed.was_start, tz)})" if changed.was_start else ""
        told = f"{changed.verb.capitalize()} by {where} on {moment_label(changed.at, tz)}{was}."
    return AppointmentDetail(
        item=item,
        date_label=day_label(item.start.date()),
        location=appt.location_text or "",
        notes=appt.notes or "",
        calendars=calendars,
        notice=notice,
        note=" ".join(filter(None, (describe(series_row or appt, tz), told, f"{read_only}." if read_only else ""))),
    )
