"""Google Calendar adapter: OAuth 2 with PKCE, sync tokens, client-chosen ids, watch channels.

Its INTEGRATION is registered under the `clinicbot.integrations` entry points: calendars (`discover`,
`open_calendar`) and an OAuth2 connect.
"""

from __future__ import annotations

from typing import Any

from adapters.google.auth import GoogleAuth, GoogleTokens
from adapters.google.client import GoogleClient
from adapters.google.provider import GoogleCalendar
from adapters.google.settings import GoogleSettings, google_settings
from sync.contract import BadPayload, CalendarInfo, ConnectionInfo
from sync.contract.integration import CalendarSlot, ConnectOption, ConnectSpec, HostSettings, Integration

__all__ = ["INTEGRATION", "GoogleCalendar", "discover", "open_calendar"]

WRITABLE_ROLES = frozenset({"owner", "writer"})


async def discover(conn: ConnectionInfo, settings: HostSettings) -> list[CalendarInfo]:
    """The calendars of the account (calendarList.list, all pages); the primary one first."""
    auth = GoogleAuth(GoogleTokens(settings, conn))
    api = GoogleClient(google_settings(settings).google_api_url, auth=auth, transport=conn.transport)
    found: list[CalendarInfo] = []
    try:
        page_token: str | None = None
        while True:
            params = {"maxResults": "250", **({"pageToken": page_token} if page_token else {})}
            body = await api.request("GET", "/calendar/v3/users/me/calendarList", params=params) or {}
            for entry in body.get("items", []):
                found.append(_calendar_info(entry))
            page_token = body.get("nextPageToken")
            if not page_token:
                break
    finally:
        await api.aclose()
    return sorted(found, key=lambda c: not (c.extra or {}).get("primary", False))


def _calendar_info(entry: Any) -> CalendarInfo:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        raise BadPayload("google: calendarList entry without an id", provider="google")
    role = str(entry.get("accessRole", "reader"))
    return CalendarInfo(
        remote_id=entry["id"],
        name=str(entry.get("summaryOverride") or entry.get("summary") or entry["id"]),
        timezone=entry.get("timeZone"),
        read_only=role not in WRITABLE_ROLES,
        primary=bool(entry.get("primary")),
        extra={"primary": bool(entry.get("primary")), "access_role": role, "supports_sync": True},
    )


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, settings: HostSettings) -> GoogleCalendar:
    """A CalendarProvider bound to one calendar of the connection."""
    return GoogleCalendar(conn, calendar_remote_id, settings)


def _configured(host: HostSettings) -> bool:
    return google_settings(host).enabled


def _integration() -> Integration:
    from adapters.google.connect import GoogleOAuth  # imports this package: built after it
    from adapters.google.provider import SEND_UPDATES
    from adapters.google.push import GooglePush, GoogleWebhooks

    return Integration(
        name="google",
        title="Google Calendar",
        aliases=("gcal",),
        settings=GoogleSettings,
        configured=_configured,
        connect=ConnectSpec(
            kinds=("oauth2",),
            oauth=GoogleOAuth(),
            options=(
                ConnectOption(
                    "send_updates",
                    "Whether Google emails attendees about clinicbot's changes.",
                    choices=SEND_UPDATES,
                    default="none",
                ),
            ),
            primary_role="source",
            other_role="busy",
            setup_hint="set CLINICBOT_GOOGLE_CLIENT_ID and CLINICBOT_GOOGLE_CLIENT_SECRET",
        ),
        calendars=CalendarSlot(discover=discover, open_calendar=open_calendar),
        push_channels=GooglePush(),
        signed_webhooks=GoogleWebhooks(),
    )


#: Google Calendar: a person's own sign-in; the primary calendar is their source of bookings.
INTEGRATION = _integration()
