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
from sync.runtime.locks import credentials_lock
from sync.runtime.services import ProviderFactory
from sync.store.model import Calendar, Connection

__all__ = ["ProviderFactory", "connection_info", "credential_rotator", "credential_saver", "open_provider"]


def connection_info(conn: Connection, core: Core | None = None) -> ConnectionInfo:
    """The adapter-facing view of a connection (credentials decrypted, no rows).

    With a core, refreshed credentials (an MSAL token cache, Google tokens) are written back,
    encrypted, to the connection's row.
    """
    creds = conn.credentials if isinstance(conn.credentials, dict) else None
    transport = core.services.http_transport if core is not None else None
    save = credential_saver(core, conn.id) if core is not None and conn.id is not None else None
    rotate = credential_rotator(core, conn.id) if core is not None and conn.id is not None else None
    return ConnectionInfo(
        provider=conn.provider, account=conn.account, config=dict(conn.config or {}), credentials=creds,
        save_credentials=save, rotate_credentials=rotate, transport=transport,
    )


def credential_saver(core: Core, connection_id: int) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """A `save_credentials` callback storing the new document on the connection (EncryptedJSON)."""

    async def save(document: dict[str, Any]) -> None:
        async with core.store.session() as s:
            row = await s.get(Connection, connection_id)
            if row is not None:
                row.credentials = dict(document)

    return save


#: What an adapter hands `rotate_credentials`: the stored document in, a new one (or None: keep it) out.
RotateStep = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


def credential_rotator(core: Core, connection_id: int) -> Callable[[RotateStep], Awaitable[dict[str, Any]]]:
    """A `rotate_credentials` callback: one refresh of a connection at a time, on the newest stored tokens.

    The step runs under the connection's token lock on the document read after the lock was taken,
    so a refresh another provider object (or process) finished meanwhile is seen and its tokens
    used, never refreshed again with a refresh token that is already spent.
    """

    async def rotate(step: RotateStep) -> dict[str, Any]:
        async with credentials_lock(core, connection_id):
            async with core.store.session() as s:
                row = await s.get(Connection, connection_id)
                current = dict(row.credentials) if row is not None and isinstance(row.credentials, dict) else {}
            new = await step(current)
            if new is None:
                return current
            async with core.store.session() as s:
                row = await s.get(Connection, connection_id)
                if row is not None:
                    row.credentials = dict(new)
            return dict(new)

    return rotate


def open_provider(core: Core, conn: Connection, calendar: Calendar) -> CalendarProvider:
    """A provider bound to one calendar of one connection."""
    factory = core.services.provider_factory
    if factory is not None:
        return factory(conn, calendar)
    return registry.open_calendar(connection_info(conn, core), calendar.remote_id, core.settings)
