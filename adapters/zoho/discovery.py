"""A Zoho account's calendars and clients, at its data centre."""

from __future__ import annotations

import hashlib
from typing import Any

from adapters.zoho.auth import ZohoAuth, ZohoTokens
from adapters.zoho.client import AccountLock, ZohoClient
from adapters.zoho.provider import ZohoCalendar
from adapters.zoho.settings import zoho_settings
from sync.contract import BadPayload, CalendarInfo, ConnectionInfo
from sync.contract.integration import HostSettings

__all__ = ["discover", "open_calendar", "open_client"]


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
