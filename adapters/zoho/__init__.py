"""Zoho Calendar: a calendar provider with OAuth per data centre, polled with a changed-since cursor.

Connect with `connect zoho` in chat (or `clinicbot connection add zoho`): the person signs in at
Zoho, whose callback names their data centre; the connection keeps it and talks to
calendar.zoho.<dc> from then on. Zoho has no webhooks, so calendars are polled every
CLINICBOT_SYNC_POLL_SECONDS; a quiet poll costs one request per calendar. What could not be verified
against Zoho itself is listed in README.md here.
"""

from __future__ import annotations

import hashlib
from typing import Any

from adapters.zoho.auth import ZohoAuth, ZohoOAuth, ZohoTokens
from adapters.zoho.client import AccountLock, ZohoClient
from adapters.zoho.provider import ZohoCalendar
from adapters.zoho.settings import ZohoSettings, zoho_settings
from sync.contract import BadPayload, CalendarInfo, ConnectionInfo
from sync.contract.integration import CalendarSlot, ConnectSpec, HostSettings, Integration, Profile

__all__ = ["INTEGRATION", "ZohoCalendar", "discover", "open_calendar", "open_client"]


def open_client(conn: ConnectionInfo, host: HostSettings) -> ZohoClient:
    """A client for the connection's account, at its data centre."""
    own = zoho_settings(host)
    tokens = ZohoTokens(host, conn)
    account = str((conn.credentials or {}).get("refresh_token") or conn.account)
    lock = AccountLock(f"{tokens.dc}:{hashlib.sha256(account.encode()).hexdigest()[:16]}")
    return ZohoClient(own.api(tokens.dc), ZohoAuth(tokens), lock=lock, lock_seconds=own.zoho_lock_seconds,
                      transport=conn.transport)


def _calendar_info(raw: Any) -> CalendarInfo:
    if not isinstance(raw, dict) or not raw.get("uid"):
        raise BadPayload("zoho: a calendar without a uid", provider="zoho")
    privilege = str(raw.get("privilege") or "owner")
    return CalendarInfo(remote_id=str(raw["uid"]), name=str(raw.get("name") or raw["uid"]),
                        timezone=str(raw.get("timezone") or "") or None,
                        read_only=privilege not in ("owner", "edit", "delegate"),
                        primary=bool(raw.get("isdefault")), extra={"owner": str(raw.get("owner") or "")})


async def discover(conn: ConnectionInfo, host: HostSettings) -> list[CalendarInfo]:
    """The account's calendars, its default one first."""
    client = open_client(conn, host)
    try:
        body = await client.request("GET", "calendars")
    finally:
        await client.aclose()
    found = body.get("calendars") if isinstance(body, dict) else None
    if not isinstance(found, list):
        raise BadPayload("zoho: calendars is not a list", provider="zoho")
    return sorted((_calendar_info(c) for c in found), key=lambda c: not c.primary)


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, host: HostSettings) -> ZohoCalendar:
    return ZohoCalendar(open_client(conn, host), calendar_remote_id)


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
