"""Google Calendar adapter: OAuth 2 with PKCE, sync tokens, client-chosen ids, watch channels.

Entry points for the core's registry (sync.contract.AdapterModule): `discover` and `open_calendar`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sync.contract import BadPayload, CalendarInfo, ConnectionInfo
from adapters.google.auth import GoogleAuth, GoogleTokens
from adapters.google.client import GoogleClient
from adapters.google.provider import GoogleCalendar

if TYPE_CHECKING:
    from sync.runtime.settings import Settings

__all__ = ["GoogleCalendar", "discover", "open_calendar"]

WRITABLE_ROLES = frozenset({"owner", "writer"})


async def discover(conn: ConnectionInfo, settings: Settings) -> list[CalendarInfo]:
    """The calendars of the account (calendarList.list, all pages); the primary one first."""
    api = GoogleClient(settings.google_api_url, auth=GoogleAuth(GoogleTokens(settings, conn)), transport=conn.transport)
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
        extra={"primary": bool(entry.get("primary")), "access_role": role, "supports_sync": True},
    )


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, settings: Settings) -> GoogleCalendar:
    """A CalendarProvider bound to one calendar of the connection."""
    return GoogleCalendar(conn, calendar_remote_id, settings)
