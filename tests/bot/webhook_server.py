"""The server's webhook routes under test: a client on the real app whose background syncs are recorded,
and a connection with one calendar and its push subscription, as a connect leaves them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from aiohttp.test_utils import TestClient, TestServer

from bot.app import build_app
from sync.runtime.core import Core
from sync.runtime.syncqueue import SyncQueue
from sync.store.model import Calendar, Connection, WebhookSubscription


@asynccontextmanager
async def recording_client(core: Core, release: asyncio.Event | None = None
                           ) -> AsyncIterator[tuple[TestClient, list[int]]]:
    """A client on the app, and the connection ids whose sync it asked for, in order; with `release`,
    each sync waits for it (a sync takes a while: later notifications coalesce)."""
    synced: list[int] = []

    async def runner(connection_id: int) -> None:
        synced.append(connection_id)
        if release is not None:
            await release.wait()

    core.services.sync_queue = SyncQueue(runner)
    async with TestClient(TestServer(build_app(core.settings, core=core))) as c:
        yield c, synced


async def subscribed_connection(core: Core, provider: str, account: str, *, calendar: tuple[str, str],
                                subscription: tuple[str, str], secret: str, lifetime: timedelta) -> int:
    """A connection just synced (the poll loop leaves it alone) with one calendar (remote id, name) and
    its webhook subscription (remote id, resource id) that `lifetime` ends; the connection's id."""
    async with core.store.session() as s:
        conn = Connection(practice_id=1, provider=provider, account=account, last_success_at=core.clock())
        s.add(conn)
        await s.flush()
        cal = Calendar(connection_id=conn.id, remote_id=calendar[0], name=calendar[1])
        s.add(cal)
        await s.flush()
        s.add(WebhookSubscription(connection_id=conn.id, calendar_id=cal.id, provider=provider,
                                  remote_id=subscription[0], resource_id=subscription[1], secret=secret,
                                  expires_at=core.clock() + lifetime))
        return conn.id
