"""Acuity connected with its OAuth (beside user id + API key): the callback stores the Bearer token, the
webhook is made through Acuity's API with that token, its deliveries are checked and synced, and
disconnecting deletes it at Acuity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import build_app
from bot.commands import handle, parse
from bot.views import Notice
from sync.boot import open_core
from sync.engine.outbox import run_until_idle
from sync.engine.run import sync_connection
from sync.engine.subscriber import register
from sync.integrations.connect import begin_oauth, finish_oauth
from sync.integrations.push import ensure_push
from sync.runtime.core import Core
from sync.runtime.syncqueue import SyncQueue
from sync.services.connections import add_connection
from sync.services.removals import remove_connection, retry_removals
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Connection, Practice, WebhookSubscription
from tests.adapters.acuity.fakes.acuity import AcuityFake
from tests.bot.clinic import make_actor
from tests.conftest import drop_schema, make_settings
from tests.servers import free_port

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2, hours=3)


@pytest.fixture
async def core(backend: str, tmp_path: Path, fake: AcuityFake) -> AsyncIterator[Core]:
    port = free_port()
    settings = make_settings(backend, tmp_path, acuity_api_url=fake.url, acuity_auth_url=fake.url,
                             acuity_client_id=fake.client_id, acuity_client_secret=fake.client_secret,
                             public_url=f"http://127.0.0.1:{port}")
    core = open_core(settings)
    await upgrade(core.store)
    register(core)
    fake.add_calendar(1, "Dr Lee")
    fake.add_calendar(2, "Dr Ng")

    async def runner(connection_id: int) -> None:
        await sync_connection(core, connection_id)

    core.services.sync_queue = SyncQueue(runner)
    server = TestServer(build_app(core.settings, core=core), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield core
    finally:
        await fake.drain()
        await core.services.sync_queue.drain()
        await server.close()
        await core.close()
        await drop_schema(settings)


async def test_oauth_connect_webhook_delivery_and_disconnect(core: Core, fake: AcuityFake) -> None:
    async with core.store.session() as s:
        practice = Practice(name="Clinic", timezone="Europe/London")
        s.add(practice)
        await s.flush()
        practice_id = practice.id
    pending = await begin_oauth(core, "acuity", practice_id=practice_id, chat_identity_id=None)
    assert pending.url.startswith(f"{fake.url}/oauth2/authorize?") and "scope=api-v1" in pending.url
    saved = await finish_oauth(core, "acuity", {"state": pending.state, "code": fake.authorize()})
    assert [c["url"] for c in saved.calendars] == ["1", "2"]
    async with core.store.session() as s:
        conn = await s.get(Connection, saved.connection_id)
        assert conn is not None and conn.credentials["access_token"] in fake.bearer_tokens
    # Both calendars share the account's one webhook, made with the OAuth token.
    assert (await ensure_push(core, saved.connection_id)).created == 2
    (hook,) = fake.webhooks.values()
    assert hook["event"] == "appointment.changed" and hook["key"] == fake.client_secret
    await fake.book(2, START, 45)
    for _ in range(3):
        await fake.drain()
        assert core.services.sync_queue is not None
        await core.services.sync_queue.drain()
        await run_until_idle(core)
    assert fake.delivered == [200]
    async with core.store.session() as s:
        (appt,) = (await s.scalars(select(Appointment))).all()
        assert appt.client_name == "Jane Roe" and appt.start == START
    gone = await remove_connection(core, saved.connection_id, actor="cli:test")
    assert gone.stopped == 2 and gone.done and fake.webhooks == {}
    async with core.store.session() as s:
        assert (await s.scalars(select(WebhookSubscription))).all() == []


async def test_disconnect_from_chat_retries_a_failed_delete_then_forgets(core: Core, fake: AcuityFake) -> None:
    admin = await make_actor(core, "UADMIN", ("admin",))
    added = await add_connection(core, "acuity", "https://acuityscheduling.com", username=fake.user_id,
                                 password=fake.api_key, actor="cli:test")
    assert (await ensure_push(core, added.connection_id)).created == 2
    (hook_id,) = fake.webhooks
    fake.fail_delete = 500
    view = await handle(core, admin, parse(f"disconnect {added.connection_id}"))
    assert isinstance(view, Notice) and "no longer syncs" in view.text and "500" in view.text
    async with core.store.session() as s:
        conn = await s.get(Connection, added.connection_id)
        assert conn is not None and conn.status == "removing" and not conn.sync_enabled
        rows = (await s.scalars(select(WebhookSubscription))).all()
    # Both channels name the one webhook Acuity failed to delete: kept, to be deleted again.
    assert {r.status for r in rows} == {"stopping"} and hook_id in fake.webhooks
    assert (await ensure_push(core, added.connection_id)).created == 0  # nothing renews it meanwhile
    await retry_removals(core)  # Acuity still failing: nothing forgotten
    async with core.store.session() as s:
        assert await s.get(Connection, added.connection_id) is not None
    fake.fail_delete = 0
    await retry_removals(core)
    assert fake.webhooks == {}
    async with core.store.session() as s:
        assert await s.get(Connection, added.connection_id) is None
        assert (await s.scalars(select(WebhookSubscription))).all() == []
    again = await handle(core, admin, parse(f"disconnect {added.connection_id}"))
    assert "no connection" in getattr(again, "message", "")
