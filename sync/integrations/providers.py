"""Opening a CalendarProvider for a stored calendar, through the adapter registry.

Tests and embedders may put a factory in `core.services.provider_factory`
(`(connection, calendar) -> CalendarProvider`); it is consulted first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sync.contract import CalendarProvider, ConnectionInfo
from sync.integrations import registry
from sync.runtime.core import Core
from sync.runtime.services import ProviderFactory
from sync.store.model import Calendar, Connection

__all__ = ["ProviderFactory", "connection_info", "credential_saver", "open_provider"]



def connection_info(conn: Connection, core: Core | None = None) -> ConnectionInfo:
    """The adapter-facing view of a connection (credentials decrypted, no rows).

    With a core, refreshed credentials (an MSAL token cache, Google tokens) are written back,
    encrypted, to the connection's row.
    """
    creds = conn.credentials if isinstance(conn.credentials, dict) else None
    transport = core.services.http_transport if core is not None else None
    save = credential_saver(core, conn.id) if core is not None and conn.id is not None else None
    return ConnectionInfo(
        provider=conn.provider, account=conn.account, config=dict(conn.config or {}), credentials=creds,
        save_credentials=save, transport=transport,
    )


def credential_saver(core: Core, connection_id: int) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """A `save_credentials` callback storing the new document on the connection (EncryptedJSON)."""

    async def save(document: dict[str, Any]) -> None:
        async with core.store.session() as s:
            row = await s.get(Connection, connection_id)
            if row is not None:
                row.credentials = dict(document)

    return save


def open_provider(core: Core, conn: Connection, calendar: Calendar) -> CalendarProvider:
    """A provider bound to one calendar of one connection."""
    factory = core.services.provider_factory
    if factory is not None:
        return factory(conn, calendar)
    return registry.open_calendar(connection_info(conn, core), calendar.remote_id, core.settings)
