"""The calendars of a Google account (calendarList.list), for connecting and refreshing a connection."""

from __future__ import annotations

from typing import Any

from adapters.google.auth import GoogleAuth, GoogleTokens
from adapters.google.client import GoogleClient
from adapters.google.settings import google_settings
from sync.contract import BadPayload, CalendarInfo, ConnectionInfo
from sync.contract.integration import HostSettings

__all__ = ["discover"]

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
