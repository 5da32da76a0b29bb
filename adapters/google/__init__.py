"""Google Calendar adapter: OAuth 2 with PKCE, sync tokens, client-chosen ids, watch channels.

Its INTEGRATION is registered under the `clinicbot.integrations` entry points: calendars (`discover`,
`open_calendar`) and an OAuth2 connect.
"""

from __future__ import annotations

from adapters.google.connect import ATTACHMENTS, GoogleOAuth
from adapters.google.discovery import discover
from adapters.google.provider import SEND_UPDATES, GoogleCalendar
from adapters.google.push import GooglePush, GoogleWebhooks
from adapters.google.settings import GoogleSettings, google_settings
from sync.contract import ConnectionInfo
from sync.contract.integration import CalendarSlot, ConnectOption, ConnectSpec, HostSettings, Integration

__all__ = ["INTEGRATION", "GoogleCalendar", "discover", "open_calendar"]


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, settings: HostSettings) -> GoogleCalendar:
    """A CalendarProvider bound to one calendar of the connection."""
    return GoogleCalendar(conn, calendar_remote_id, settings)


def _configured(host: HostSettings) -> bool:
    return google_settings(host).enabled


def _integration() -> Integration:
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
                ConnectOption(
                    "attachments",
                    "Also let clinicbot read the Drive files attached to your events (Google's drive.readonly "
                    "scope), so tracked events' files open from chat.",
                    choices=ATTACHMENTS,
                    default="off",
                    personal=True,
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
