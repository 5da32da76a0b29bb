"""A Nylas grant's calendars, and a provider for one of them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from adapters.nylas.client import PROVIDER, NylasClient
from adapters.nylas.provider import NylasCalendar, grant_id, open_client
from sync.contract import AuthExpired, BadPayload, CalendarInfo, ConnectionInfo
from sync.contract.integration import HostSettings

__all__ = ["check_grant", "discover", "open_calendar"]


async def check_grant(api: NylasClient, grant: str) -> dict[str, Any]:
    """The grant's record; AuthExpired when Nylas marks it invalid (the person must sign in again)."""
    record = await api.data("GET", f"/v3/grants/{grant}")
    if record.get("grant_status") == "invalid":
        raise AuthExpired("nylas: the grant is invalid (its sign-in expired); reconnect it", provider=PROVIDER)
    return record


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
