"""Acuity Scheduling: appointments from Acuity, reschedules and cancels back, signed form webhooks.

Connection: the account's user id and API key, given to the CLI
(`clinicbot connection add acuity --username <user id> --password-env ACUITY_API_KEY`). Each Acuity
calendar (a staff member) is one booking calendar (remote id = calendarID), mapped to a practitioner
with `staff map acuity <calendarID> @practitioner`.
"""

from __future__ import annotations

import httpx

from adapters.acuity.bookings import AcuityBookings
from adapters.acuity.client import AcuityClient
from adapters.acuity.settings import AcuitySettings, acuity_settings
from adapters.acuity.webhooks import AcuityChannels, AcuityWebhooks
from sync.contract import AuthExpired, CalendarInfo, ConnectionInfo
from sync.contract.booking import BookingCalendar
from sync.contract.integration import CalendarSlot, ConnectSpec, HostSettings, Integration

__all__ = ["INTEGRATION", "AcuityBookings", "discover", "open_calendar", "open_source"]


def open_source(conn: ConnectionInfo, host: HostSettings) -> AcuityBookings:
    """The account's appointments, with Basic auth (user id, API key)."""
    creds = conn.credentials or {}
    user, key = str(creds.get("username") or ""), str(creds.get("password") or "")
    if not user or not key:
        raise AuthExpired("acuity: the connection needs the user id and API key", provider="acuity")
    cfg = acuity_settings(host)
    client = AcuityClient(cfg.acuity_api_url, httpx.BasicAuth(user, key), rate=cfg.acuity_requests_per_second,
                          transport=conn.transport)
    return AcuityBookings(client, api_key=key)


async def discover(conn: ConnectionInfo, host: HostSettings) -> list[CalendarInfo]:
    """The account's calendars (staff), one booking calendar each."""
    source = open_source(conn, host)
    try:
        return await source.staff()
    finally:
        await source.aclose()


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, host: HostSettings) -> BookingCalendar:
    return BookingCalendar(open_source(conn, host), calendar_remote_id)


#: Acuity Scheduling: user id and API key on the command line; every calendar's appointments are a source.
INTEGRATION = Integration(
    notifies_clients=True,  # the platform emails its clients about bookings it holds
    name="acuity",
    title="Acuity Scheduling",
    aliases=("squarespace",),
    settings=AcuitySettings,
    connect=ConnectSpec(
        kinds=("credentials",),
        defaults={"url": "https://acuityscheduling.com"},
        steps=(
            "Acuity appointments are read from Acuity; reschedules and cancels made in chat go back to Acuity.",
            "In Acuity, open Integrations > API and copy the user id and the API key.",
            "The server's admin runs `clinicbot connection add acuity --username <user id> --password-env "
            "ACUITY_API_KEY` (the key is stored encrypted), then maps each calendar with "
            "`staff map acuity <calendar id> @practitioner`.",
        ),
        primary_role="source",
        other_role="source",
    ),
    calendars=CalendarSlot(discover=discover, open_calendar=open_calendar),
    booking_source=open_source,
    push_channels=AcuityChannels(),
    signed_webhooks=AcuityWebhooks(),
)
