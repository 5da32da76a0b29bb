"""An adapter module (discover/open_calendar) over MemoryServers, for CLI tests: `memory://name` URLs."""

from __future__ import annotations

from typing import Any

from sync.contract import CalendarInfo, ConnectionInfo, Refused
from tests.fakes.memory_calendar import MemoryCalendar, MemoryServer

SERVERS: dict[str, MemoryServer] = {}


async def discover(conn: ConnectionInfo, settings: Any) -> list[CalendarInfo]:
    url = str(conn.config["url"])
    if url not in SERVERS:
        raise Refused(f"no memory account at {url}")
    return [CalendarInfo(remote_id=url, name=url.rsplit("/", 1)[-1])]


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, settings: Any) -> MemoryCalendar:
    return MemoryCalendar(SERVERS[calendar_remote_id])
