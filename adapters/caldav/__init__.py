"""CalDAV calendars (any RFC 4791 server, and iCloud) for the adapter registry.

Connection config: {"url": "https://dav.example.org/", "timezone": "Europe/Berlin" (optional: how
to read floating times)}; credentials: {"username": ..., "password": ...}. For provider "icloud"
the URL defaults to https://caldav.icloud.com and the password must be an app-specific one.
"""

from __future__ import annotations

from typing import Any

from adapters.caldav.calendar import CalDAVCalendar
from adapters.caldav.discovery import discover_calendars
from adapters.caldav.session import DavSession
from sync.contract import CalendarInfo, ConnectionInfo, Refused
from sync.contract.integration import CalendarSlot, ConnectSpec, Integration, Profile

__all__ = ["CONNECT_HELP", "ICLOUD", "ICLOUD_URL", "INTEGRATION", "CalDAVCalendar", "discover", "open_calendar"]

ICLOUD_URL = "https://caldav.icloud.com"

CONNECT_HELP: dict[str, str] = {
    "icloud": (
        "iCloud needs an app-specific password, not your Apple ID password. Make one at "
        "appleid.apple.com: sign in, open Sign-In and Security, choose App-Specific Passwords, "
        'press + and name it "clinicbot". Then connect with your Apple ID e-mail as the user name '
        "and the generated password (xxxx-xxxx-xxxx-xxxx). You can revoke it there at any time."
    ),
    "caldav": (
        "Give the CalDAV server's address (for example https://dav.example.org/ or the calendar's own "
        "URL), your user name and your password. clinicbot finds the calendars through "
        "/.well-known/caldav; if your server has no such address, give the calendar home URL instead."
    ),
}


def _session(conn: ConnectionInfo, settings: Any, base_url: str) -> DavSession:
    credentials = conn.credentials or {}
    username = credentials.get("username") or conn.config.get("username") or None
    password = credentials.get("password")
    if conn.provider == "icloud" and not (username and password):
        raise Refused("iCloud needs your Apple ID and an app-specific password. " + CONNECT_HELP["icloud"])
    return DavSession(
        base_url,
        username=username,
        password=password,
        provider=conn.provider,
        transport=conn.transport,
        allow_private_urls=bool(getattr(settings, "allow_private_urls", False)),
    )


def _start_url(conn: ConnectionInfo) -> str:
    url = conn.config.get("url") or (ICLOUD_URL if conn.provider == "icloud" else None)
    if not url:
        raise Refused("a CalDAV connection needs the server URL (--url)")
    if not str(url).startswith(("http://", "https://")):
        raise Refused(f"the CalDAV URL must start with https:// (got {url!r})")
    return str(url)


async def discover(conn: ConnectionInfo, settings: Any) -> list[CalendarInfo]:
    """The account's event calendars (principal -> calendar home -> collections)."""
    start = _start_url(conn)
    session = _session(conn, settings, start)
    try:
        return await discover_calendars(session, start)
    finally:
        await session.aclose()


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, settings: Any) -> CalDAVCalendar:
    """A provider for one calendar; `calendar_remote_id` is the collection URL discovery gave."""
    if not calendar_remote_id.startswith(("http://", "https://")):
        raise Refused(f"not a CalDAV calendar URL: {calendar_remote_id!r}")
    session = _session(conn, settings, calendar_remote_id)
    tz = conn.config.get("timezone")
    return CalDAVCalendar(session, calendar_remote_id, name=conn.provider, default_tz=tz)


_CLI_STEP = (
    "Passwords are never typed into chat. The server's admin adds the account with the "
    "clinicbot command line (`clinicbot --help` lists the connection commands); "
    "it is stored encrypted."
)
_CALENDARS = CalendarSlot(discover=discover, open_calendar=open_calendar)

#: Any RFC 4791 server. New calendars start as busy (read only) until an admin gives them a role.
INTEGRATION = Integration(
    name="caldav",
    title="CalDAV",
    connect=ConnectSpec(
        kinds=("credentials",),
        steps=(
            "You need the server address, a user name and an app-specific password.",
            _CLI_STEP,
            "Then `status` shows the connection and its calendars.",
        ),
    ),
    calendars=_CALENDARS,
    profile=Profile(setup="the server address, a user name and an app password"),
)

#: iCloud, through CalDAV at caldav.icloud.com, with an app-specific password.
ICLOUD = Integration(
    name="icloud",
    title="iCloud (CalDAV)",
    connect=ConnectSpec(
        kinds=("credentials",),
        steps=(
            "You need the server address, a user name and an app-specific password"
            " (appleid.apple.com → Sign-In and Security → App-Specific Passwords).",
            _CLI_STEP,
            "Then `status` shows the connection and its calendars.",
        ),
        defaults={"url": ICLOUD_URL},
    ),
    calendars=_CALENDARS,
    profile=Profile(setup="an app-specific password (appleid.apple.com)"),
)
