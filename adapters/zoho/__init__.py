"""Zoho Calendar: a calendar provider with OAuth per data centre, polled with a changed-since cursor.

Connect with `connect zoho` in chat (or `clinicbot connection add zoho`): the person signs in at
Zoho, whose callback names their data centre; the connection keeps it and talks to
calendar.zoho.<dc> from then on. Zoho has no webhooks, so calendars are polled every
CLINICBOT_SYNC_POLL_SECONDS; a quiet poll costs one request per calendar. What could not be verified
against Zoho itself is listed in README.md here.
"""

from __future__ import annotations

from adapters.zoho.discovery import discover, open_calendar, open_client
from adapters.zoho.oauth import ZohoOAuth
from adapters.zoho.provider import ZohoCalendar
from adapters.zoho.settings import ZohoSettings, zoho_settings
from sync.contract.integration import CalendarSlot, ConnectSpec, HostSettings, Integration, Profile

__all__ = ["INTEGRATION", "ZohoCalendar", "discover", "open_calendar", "open_client"]


def _configured(host: HostSettings) -> bool:
    return zoho_settings(host).enabled


#: Zoho Calendar: a person's own sign-in (per data centre); the default calendar is their source of bookings.
INTEGRATION = Integration(
    name="zoho",
    title="Zoho Calendar",
    aliases=("zohocalendar", "zoho-calendar"),
    settings=ZohoSettings,
    configured=_configured,
    connect=ConnectSpec(
        kinds=("oauth2",),
        oauth=ZohoOAuth(),
        primary_role="source",
        other_role="busy",
        setup_hint="register a server-based app in Zoho's API console (redirect <public URL>/oauth/zoho/callback, "
                   "multi-DC on) and set CLINICBOT_ZOHO_CLIENT_ID and CLINICBOT_ZOHO_CLIENT_SECRET",
    ),
    calendars=CalendarSlot(discover=discover, open_calendar=open_calendar),
    profile=Profile(reads="calendar events (single events; a repeating one by its first visit)",
                    writes="mirror copies; moves and cancels (with the event's etag)",
                    arrives="poll with a changed-since cursor (no webhooks); one request per calendar when quiet",
                    setup="a Zoho API console app (multi-DC), then each person signs in"),
)
