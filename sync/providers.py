"""Opening a CalendarProvider for a stored calendar, through the adapter registry.

Tests and embedders may put a factory in `core.services["provider_factory"]`
(`(connection, calendar) -> CalendarProvider`); it is consulted first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from adapters.base import CalendarProvider, ConnectionInfo
from adapters.registry import adapter_for
from sync.core import Core
from sync.model import Calendar, Connection

__all__ = ["ProviderFactory", "connection_info", "open_provider"]

ProviderFactory = Callable[[Connection, Calendar], CalendarProvider]


def connection_info(conn: Connection, core: Core | None = None) -> ConnectionInfo:
    """The adapter-facing view of a connection (credentials decrypted, no rows)."""
    creds = conn.credentials if isinstance(conn.credentials, dict) else None
    transport = core.services.get("http_transport") if core is not None else None
    return ConnectionInfo(
        provider=conn.provider, account=conn.account, config=dict(conn.config or {}), credentials=creds,
        transport=transport,
    )


def open_provider(core: Core, conn: Connection, calendar: Calendar) -> CalendarProvider:
    """A provider bound to one calendar of one connection."""
    factory = cast(ProviderFactory | None, core.services.get("provider_factory"))
    if factory is not None:
        return factory(conn, calendar)
    module: Any = adapter_for(conn.provider)
    return cast(CalendarProvider, module.open_calendar(connection_info(conn, core), calendar.remote_id, core.settings))
