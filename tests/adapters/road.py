"""A booking platform through the running server: the world each platform's `test_road.py` starts from.

`served` runs the server with its sync worker on a loopback port known before it starts (the platform
delivers to it), the platform's fake as its API, and the account connected as `clinicbot connection
add` does; with `staff`, Dr Lee is mapped to that staff id. `settle` lets deliveries, syncs and the
outbox run until quiet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import build_app
from sync.boot import open_core
from sync.engine.outbox import run_until_idle
from sync.engine.run import sync_connection
from sync.engine.subscriber import register
from sync.runtime.core import Core
from sync.runtime.syncqueue import SyncQueue
from sync.services.connections import AddedConnection, add_connection
from sync.services.staff import map_staff
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Practice, Practitioner
from tests.adapters.fakes_kit import WebhookFake
from tests.conftest import drop_schema, make_settings
from tests.servers import free_port


@asynccontextmanager
async def served(backend: str, tmp_path: Path, fake: WebhookFake, provider: str, url: str, *,
                 staff: str | None = None, settings: Mapping[str, Any] | None = None,
                 **connect: Any) -> AsyncIterator[tuple[Core, AddedConnection, str]]:
    """The core, the connection `connect` added, and the server's base URL, while the server runs."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = make_settings(backend, tmp_path, **{f"{provider}_api_url": fake.url}, public_url=base,
                           **(settings or {}))
    core = open_core(config)
    await upgrade(core.store)
    register(core)
    if staff is not None:
        async with core.store.session() as s:
            practice = await s.scalar(select(Practice).order_by(Practice.id))  # the one the CLI connects to
            assert practice is not None
            s.add(Practitioner(practice_id=practice.id, name="Dr Lee", handle="dr-lee"))
    added = await add_connection(core, provider, url, actor="cli:test", **connect)
    if staff is not None:
        async with core.store.session() as s:
            lee = await s.scalar(select(Practitioner))
            assert lee is not None
            await map_staff(s, lee, provider, staff, actor="cli:test")

    async def runner(connection_id: int) -> None:
        await sync_connection(core, connection_id)

    core.services.sync_queue = SyncQueue(runner)
    server = TestServer(build_app(core.settings, core=core), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield core, added, base
    finally:
        await fake.drain()
        await core.services.sync_queue.drain()
        await server.close()
        await core.close()
        await drop_schema(config)


async def settle(core: Core, fake: WebhookFake) -> None:
    """Deliveries answered, the syncs they asked for run, the outbox idle; three rounds (each may cause more)."""
    for _ in range(3):
        await fake.drain()
        await core.services.sync_queue.drain()
        await run_until_idle(core)


async def appointments(core: Core) -> list[Appointment]:
    async with core.store.session() as s:
        return list((await s.scalars(select(Appointment).order_by(Appointment.id))).all())
