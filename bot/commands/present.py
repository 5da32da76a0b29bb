"""Appointments -> view items: labels in the practice's zone, and the buttons the actor may press.

Takes the services' read models (sync.services.appointment_views), never rows."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from bot.commands.access import can_change
from bot.commands.actions import Action, AskCancel, OpenReschedule, ShowDetails
from bot.commands.identity import Actor
from bot.views import AgendaItem, AppointmentDetail
from sync.services.appointment_views import AppointmentDetails, AppointmentView, moment_label
from sync.services.appointments import ACTIVE_STATUSES

__all__ = ["agenda_item", "appointment_detail", "day_label", "details_action", "moment_label"]


def day_label(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def agenda_item(actor: Actor, appt: AppointmentView, tz: str, with_details: bool = True) -> AgendaItem:
    """One appointment as a list item; one whose source cannot be written (`read_only`) offers no move or cancel."""
    zone = ZoneInfo(tz)
    start, end = appt.start.astimezone(zone), appt.end.astimezone(zone)
    label = f"{start:%H:%M}–{end:%H:%M}" if start.date() == end.date() else f"{start:%H:%M}–{end:%a %H:%M}"
    actions: list[Action] = []
    if appt.status in ACTIVE_STATUSES and can_change(actor, appt) and not appt.is_series and appt.read_only is None:
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
        practitioner=appt.practitioner,
        client=appt.client,
        service=appt.service,
        status=appt.status,
        actions=tuple(actions),
    )


def details_action(appt: AppointmentView) -> ShowDetails:
    """The Details button; for a visit of a series it names the visit, which shares the series' id."""
    return ShowDetails(appt.id, appt.start if appt.is_series else None)


def appointment_detail(actor: Actor, details: AppointmentDetails, notice: str = "") -> AppointmentDetail:
    item = agenda_item(actor, details.view, details.timezone, with_details=False)
    return AppointmentDetail(
        item=item,
        date_label=day_label(item.start.date()),
        location=details.view.location,
        notes=details.view.notes,
        phone=details.view.phone,
        calendars=details.calendars,
        notice=notice,
        note=details.note,
    )
