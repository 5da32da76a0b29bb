"""Nylas v3: work calendars (Google, Microsoft, iCloud, Exchange...) through one Nylas application.

Connect: hosted OAuth from chat (`connect nylas`) or the CLI, giving a grant; or a grant the
practice already has, given to the CLI with the application's API key
(`clinicbot connection add nylas --username <grant id> [--password-env VAR holding the API key]`;
the key defaults to CLINICBOT_NYLAS_API_KEY; `--url` is not used: the region is
CLINICBOT_NYLAS_API_URL). Only calendars and events are read: never mail or contacts.

Its INTEGRATION offers calendars (discover, open_calendar), push channels (webhook destinations)
and signed webhooks. The main calendar gets the mirror role (the practice's events go out to it
with the calendar's projection); the others only block busy time.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from adapters.nylas.client import PROVIDER, NylasClient
from adapters.nylas.connect import NylasOAuth, check_grant
from adapters.nylas.provider import NylasCalendar, grant_id, open_client
from adapters.nylas.settings import NylasSettings, nylas_settings
from adapters.nylas.webhooks import NylasPush, NylasWebhooks
from sync.contract import BadPayload, CalendarInfo, ConnectionInfo
from sync.contract.integration import CalendarSlot, ConnectSpec, HostSettings, Integration

__all__ = ["INTEGRATION", "NylasCalendar", "discover", "open_calendar"]


async def discover(conn: ConnectionInfo, host: HostSettings) -> list[CalendarInfo]:
    """The grant's calendars (all pages), its primary first; AuthExpired when the grant is invalid."""
    grant = grant_id(conn)
    api: NylasClient = open_client(conn, host)
    try:
        await check_grant(api, quote(grant, safe=""))
        found = await api.pages(f"/v3/grants/{quote(grant, safe='')}/calendars", {"limit": "200"})
    finally:
        await api.aclose()
    calendars = [_calendar_info(c) for c in found]
    return sorted(calendars, key=lambda c: not c.primary)


def _calendar_info(entry: Any) -> CalendarInfo:
    if not isinstance(entry.get("id"), str) or not entry["id"]:
        raise BadPayload("nylas: a calendar without an id", provider=PROVIDER)
    return CalendarInfo(
        remote_id=entry["id"],
        name=str(entry.get("name") or entry["id"]),
        timezone=entry.get("timezone") if isinstance(entry.get("timezone"), str) else None,
        read_only=bool(entry.get("read_only")),
        primary=bool(entry.get("is_primary")),
        extra={"is_owned_by_user": bool(entry.get("is_owned_by_user", True))},
    )


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, host: HostSettings) -> NylasCalendar:
    """A CalendarProvider bound to one calendar of the connection's grant."""
    return NylasCalendar(conn, calendar_remote_id, host)


def _configured(host: HostSettings) -> bool:
    return nylas_settings(host).enabled


#: Nylas: a person's work calendar through the practice's Nylas application.
INTEGRATION = Integration(
    name="nylas",
    title="Nylas",
    settings=NylasSettings,
    configured=_configured,
    connect=ConnectSpec(
        kinds=("oauth2", "credentials"),
        oauth=NylasOAuth(),
        steps=(
            "Sign in with the work account through Nylas (`connect nylas`): only its calendars are read.",
            "A grant the practice already has is added on the command line: "
            "`clinicbot connection add nylas --username <grant id>` (the API key is CLINICBOT_NYLAS_API_KEY).",
        ),
        primary_role="mirror",
        other_role="busy",
        defaults={"url": "https://api.us.nylas.com"},
        setup_hint="set CLINICBOT_NYLAS_CLIENT_ID and CLINICBOT_NYLAS_API_KEY",
    ),
    calendars=CalendarSlot(discover=discover, open_calendar=open_calendar),
    push_channels=NylasPush(),
    signed_webhooks=NylasWebhooks(),
)
