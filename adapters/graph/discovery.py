"""The calendars a Graph connection reaches: a delegated account's own, or every mapped practitioner's
mailbox of a practice-wide (application) connection."""

from __future__ import annotations

import logging
from typing import Any

from adapters.graph.connection import is_application, open_client
from sync.contract import CalendarInfo, ConnectionInfo, NotFound

__all__ = ["discover"]

log = logging.getLogger("clinicbot.graph")


async def discover(conn: ConnectionInfo, settings: Any) -> list[CalendarInfo]:
    """The calendars of a delegated account, or of every mapped practitioner of an application connection."""
    if not is_application(conn):
        return await _mailbox_calendars(conn, settings, "me")
    found: list[CalendarInfo] = []
    missing = 0
    for ref in conn.config.get("users") or []:
        try:
            found += await _mailbox_calendars(conn, settings, f"users/{ref}")
        except NotFound:
            missing += 1
    if missing:
        log.warning("graph discovery skipped unknown users", extra={"count": missing})
    return found


async def _mailbox_calendars(conn: ConnectionInfo, settings: Any, mailbox: str) -> list[CalendarInfo]:
    client, _personal = open_client(conn, settings, mailbox)
    try:
        out = []
        async for page in client.pages(f"/{mailbox}/calendars"):
            for cal in page["value"]:
                if not isinstance(cal, dict) or not isinstance(cal.get("id"), str):
                    continue
                default = bool(cal.get("isDefaultCalendar"))
                path = f"{mailbox}/calendar" if default else f"{mailbox}/calendars/{cal['id']}"
                out.append(
                    CalendarInfo(
                        remote_id=path,
                        name=str(cal.get("name") or ""),
                        read_only=not cal.get("canEdit", True),
                        primary=default,
                        extra={
                            "graph_id": cal["id"],
                            "default": default,
                            "owner": (cal.get("owner") or {}).get("address"),
                        },
                    )
                )
        return out
    finally:
        await client.aclose()
