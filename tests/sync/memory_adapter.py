"""An adapter module (discover/open_calendar) over MemoryServers, for CLI tests: `memory://name` URLs.

An account URL finds itself and every server below it (`memory://x/` finds `memory://x/a`...);
URLs in READ_ONLY are reported read-only, as a platform reports a calendar shared read-only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from adapters.caldav import INTEGRATION as CALDAV
from sync.contract import CalendarInfo, ConnectionInfo, Refused
from sync.contract.integration import CalendarSlot
from tests.fakes.memory_calendar import MemoryCalendar, MemoryServer

SERVERS: dict[str, MemoryServer] = {}
READ_ONLY: set[str] = set()


async def discover(conn: ConnectionInfo, settings: Any) -> list[CalendarInfo]:
    url = str(conn.config["url"])
    found = sorted(u for u in SERVERS if u == url or u.startswith(url.rstrip("/") + "/"))
    if not found:
        raise Refused(f"no memory account at {url}")
    return [CalendarInfo(remote_id=u, name=u.rsplit("/", 1)[-1], read_only=u in READ_ONLY) for u in found]


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, settings: Any) -> MemoryCalendar:
    return MemoryCalendar(SERVERS[calendar_remote_id])


#: The CalDAV integration, its calendars served from SERVERS (put it in registry.OVERRIDES["caldav"]).
INTEGRATION = replace(CALDAV, calendars=CalendarSlot(discover=discover, open_calendar=open_calendar))
