"""Privacy projection: what a mirror copy of an appointment shows, per mirror calendar.

- `busy`: the practice's word for busy (default "Busy") and nothing else;
- `initials` (the default): the service name and the client's initials;
- `full`: title, client, notes and location.

Every copy carries `clinicbot_id` (the appointment's chat ref) and a UID derived from the
appointment and the calendar, so a retried create is recognised as the same copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sync.contract.items import EventData, EventStatus

if TYPE_CHECKING:
    from sync.engine.plan import CalendarView, Canonical, Policy

__all__ = ["PROJECTIONS", "initials", "mirror_uid", "project"]

PROJECTIONS = ("busy", "initials", "full")


def mirror_uid(appointment_id: int, calendar_id: int) -> str:
    """The UID (and create idempotency key) of the one copy of an appointment on a calendar.

    Letters a-v and digits only, so it is also a valid Google event id (base32hex).
    """
    return f"cb{appointment_id}c{calendar_id}"


def initials(name: str | None) -> str:
    """'Jane van Roe' -> 'J.V.R.'; empty when there is no name."""
    parts = [p for p in (name or "").replace("-", " ").split() if p[:1].isalpha()]
    return "".join(p[0].upper() + "." for p in parts[:3])


def project(appt: Canonical, calendar: CalendarView, policy: Policy, uid: str) -> EventData:
    """The event a mirror calendar should hold for this appointment."""
    status: EventStatus = "cancelled" if appt.status == "cancelled" else (
        "tentative" if appt.status == "tentative" else "confirmed"
    )
    mode = calendar.projection if calendar.projection in PROJECTIONS else "initials"
    summary, description, location = policy.busy_word, "", ""
    client_name = client_email = service = None
    if mode == "initials":
        who = initials(appt.client_name)
        summary = f"{appt.service or 'Appointment'} ({who})" if who else (appt.service or "Appointment")
        service = appt.service
    elif mode == "full":
        summary = appt.title or " – ".join(x for x in (appt.service, appt.client_name) if x) or "Appointment"
        description, location = appt.notes or "", appt.location_text or ""
        client_name, client_email, service = appt.client_name, appt.client_email, appt.service
    if status == "cancelled":
        summary = f"Cancelled: {summary}"
    return EventData(
        uid=uid,
        summary=summary,
        start=appt.start,
        end=appt.end,
        tzid=appt.tzid,
        all_day=appt.all_day,
        description=description,
        location=location,
        status=status,
        transparent=calendar.show_as_free or appt.transparent,
        rrule=appt.rrule,
        exdates=appt.exdates,
        rdates=appt.rdates,
        client_name=client_name,
        client_email=client_email,
        service=service,
        clinicbot_id=f"A-{appt.id}",
    )
