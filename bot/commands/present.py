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
from sync.services.appointments import ACTIVE_STATUSES
from sync.store.model import Appointment, Calendar, Link, OutboxOp, Practitioner

__all__ = ["agenda_item", "appointment_detail", "day_label", "moment_label", "practitioner_names"]


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
    actor: Actor, appt: Appointment, tz: str, names: dict[int, str], with_details: bool = True
) -> AgendaItem:
    zone = ZoneInfo(tz)
    start, end = appt.start.astimezone(zone), appt.end.astimezone(zone)
    label = f"{start:%H:%M}–{end:%H:%M}" if start.date() == end.date() else f"{start:%H:%M}–{end:%a %H:%M}"
    actions: list[Action] = []
    if appt.status in ACTIVE_STATUSES and can_change(actor, appt) and not is_series(appt):
        actions += [OpenReschedule(appt.id, appt.version), AskCancel(appt.id, appt.version)]
    if with_details:
        actions.append(ShowDetails(appt.id))
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
    item = agenda_item(actor, appt, tz, names, with_details=False)
    return AppointmentDetail(
        item=item,
        date_label=day_label(item.start.date()),
        location=appt.location_text or "",
        notes=appt.notes or "",
        calendars=calendars,
        notice=" ".join(filter(None, (notice, describe(appt, tz)))),
    )
