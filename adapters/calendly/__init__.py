"""Calendly: bookings (scheduled events) from Calendly, cancels back, reschedules refused with the client's link.

Connection: a personal access token given to the CLI
(`clinicbot connection add calendly --username <account email> --password-env CALENDLY_TOKEN`).
Each member of the Calendly organization is one booking calendar (remote id = their user URI),
mapped with `staff map calendly <user URI> @practitioner`.
"""

from __future__ import annotations

from adapters.calendly.bookings import CalendlyBookings
from adapters.calendly.client import CalendlyClient
from adapters.calendly.settings import CalendlySettings, calendly_settings
from adapters.calendly.webhooks import CalendlySubscriptions, CalendlyWebhooks
from sync.contract import CalendarInfo, ConnectionInfo
from sync.contract.booking import BookingCalendar
from sync.contract.integration import CalendarSlot, ConnectSpec, HostSettings, Integration

__all__ = ["INTEGRATION", "CalendlyBookings", "discover", "open_calendar", "open_source"]


def open_source(conn: ConnectionInfo, host: HostSettings) -> CalendlyBookings:
    creds = conn.credentials or {}
    token = str(creds.get("access_token") or creds.get("password") or "")
    client = CalendlyClient(calendly_settings(host).calendly_api_url, token, transport=conn.transport)
    return CalendlyBookings(client)


async def discover(conn: ConnectionInfo, host: HostSettings) -> list[CalendarInfo]:
    source = open_source(conn, host)
    try:
        return await source.staff()
    finally:
        await source.aclose()


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, host: HostSettings) -> BookingCalendar:
    return BookingCalendar(open_source(conn, host), calendar_remote_id)


#: Calendly: a personal access token on the command line; every organization member's bookings are a source.
INTEGRATION = Integration(
    notifies_clients=True,  # the platform emails its clients about bookings it holds
    name="calendly",
    title="Calendly",
    settings=CalendlySettings,
    connect=ConnectSpec(
        kinds=("credentials",),
        defaults={"url": "https://api.calendly.com"},
        steps=(
            "Calendly bookings are read from Calendly; cancels made in chat go back to Calendly (Calendly has no "
            "reschedule API: chat offers the client's own reschedule link instead).",
            "In Calendly, open Integrations > API & webhooks and create a personal access token.",
            "The server's admin runs `clinicbot connection add calendly --username <account email> --password-env "
            "CALENDLY_TOKEN`, then maps each member with `staff map calendly <user URI> @practitioner`.",
        ),
        primary_role="source",
        other_role="source",
    ),
    calendars=CalendarSlot(discover=discover, open_calendar=open_calendar),
    booking_source=open_source,
    push_channels=CalendlySubscriptions(),
    signed_webhooks=CalendlyWebhooks(),
)
