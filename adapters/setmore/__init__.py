"""Setmore: appointments polled from its API with its refresh-token exchange; reschedules and cancels back.

Connection: the refresh token Setmore gives API users on request (api@setmore.com), given to the CLI
(`clinicbot connection add setmore --username <account name> --password-env SETMORE_REFRESH_TOKEN`).
Setmore has no webhooks: the window is re-read every CLINICBOT_SYNC_POLL_SECONDS. Each staff member
is one booking calendar, mapped with `staff map setmore <staff key> @practitioner`. What could not be
verified is in README.md here.
"""

from __future__ import annotations

from adapters.setmore.bookings import SetmoreBookings
from adapters.setmore.client import PROVIDER, SetmoreClient
from adapters.setmore.settings import SetmoreSettings, setmore_settings
from sync.contract import AuthExpired, ConnectionInfo
from sync.contract.booking import staff_calendars
from sync.contract.integration import ConnectSpec, HostSettings, Integration, Profile

__all__ = ["INTEGRATION", "SetmoreBookings", "open_source"]


def open_source(conn: ConnectionInfo, host: HostSettings) -> SetmoreBookings:
    refresh = str((conn.credentials or {}).get("password") or "")
    if not refresh:
        raise AuthExpired("setmore: the connection needs Setmore's refresh token", provider=PROVIDER)
    return SetmoreBookings(SetmoreClient(setmore_settings(host).setmore_api_url, refresh, transport=conn.transport))


#: Setmore: a refresh token on the command line; every staff member's appointments are a source.
INTEGRATION = Integration(
    name="setmore",
    title="Setmore",
    settings=SetmoreSettings,
    connect=ConnectSpec(
        kinds=("credentials",),
        defaults={"url": "https://developer.setmore.com"},
        steps=(
            "Setmore appointments are read from Setmore's API; reschedules and cancels made in chat go back to it.",
            "Setmore gives API access on request: write to api@setmore.com and you receive a refresh token. "
            "Without it, connect the Google Calendar or Office 365 calendar Setmore syncs to instead "
            "(`connect google` or `connect outlook`).",
            "The server's admin runs `clinicbot connection add setmore --username <account name> --password-env "
            "SETMORE_REFRESH_TOKEN` (stored encrypted), then maps each staff member with "
            "`staff map setmore <staff key> @practitioner`.",
        ),
        primary_role="source",
        other_role="source",
    ),
    calendars=staff_calendars(open_source),
    booking_source=open_source,
    staff_kind="staff_key",
    profile=Profile(reads="appointments with customer, service label, staff and comment",
                    writes="reschedule and cancel (read first)",
                    arrives="poll: the window re-read every CLINICBOT_SYNC_POLL_SECONDS (no webhooks)",
                    setup="a refresh token from Setmore (API access on request)"),
)
