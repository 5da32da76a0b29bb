"""Calendly's OAuth through the running server: the callback stores the token pair and the members;
refresh tokens are single-use, so two refreshes of one connection at once spend one refresh token
(never a second use of a spent one), and a refresh answered invalid_grant asks for a reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import build_app
from bot.commands import handle, parse
from bot.commands.errors import ParseError
from bot.views import ConnectInfo, Error
from sync.boot import open_core
from sync.contract.items import Window
from sync.engine.run import sync_connection
from sync.engine.subscriber import register
from sync.integrations.connect import begin_oauth
from sync.integrations.providers import open_provider
from sync.runtime.core import Core
from sync.store.migrate import upgrade
from sync.store.model import AuditEntry, Calendar, Connection, Practice
from tests.adapters.calendly.fakes.calendly import CalendlyFake
from tests.bot.clinic import make_actor
from tests.conftest import drop_schema, make_settings
from tests.servers import free_port


@dataclass
class World:
    core: Core
    base: str
    practice_id: int


@pytest.fixture
async def world(backend: str, tmp_path: Path, fake: CalendlyFake) -> AsyncIterator[World]:
    port = free_port()
    settings = make_settings(backend, tmp_path, calendly_api_url=fake.url, calendly_auth_url=fake.url,
                             calendly_client_id=fake.client_id, calendly_client_secret=fake.client_secret,
                             public_url=f"http://127.0.0.1:{port}")
    core = open_core(settings)
    await upgrade(core.store)
    register(core)
    fake.add_user("Dr Lee")
    fake.add_user("Dr Ng")
    async with core.store.session() as s:
        practice = Practice(name="Clinic", timezone="Europe/London")
        s.add(practice)
        await s.flush()
        practice_id = practice.id
    server = TestServer(build_app(core.settings, core=core), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield World(core, f"http://127.0.0.1:{port}", practice_id)
    finally:
        await fake.drain()
        await server.close()
        await core.close()
        await drop_schema(settings)


async def _connect(world: World, fake: CalendlyFake) -> int:
    """`connect calendly`: the sign-in link, Calendly's consent (the fake's code), the callback."""
    pending = await begin_oauth(world.core, "calendly", practice_id=world.practice_id, chat_identity_id=None)
    link = urlsplit(pending.url)
    query = parse_qs(link.query)
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{fake.url}/oauth/authorize"
    assert query["client_id"] == [fake.client_id] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == [f"{world.base}/oauth/calendly/callback"]
    callback = f"{world.base}/oauth/calendly/callback"
    params = {"state": pending.state, "code": fake.authorize()}
    async with aiohttp.ClientSession() as http:
        async with http.get(callback, params=params) as answer:
            assert answer.status == 200 and "Calendly connected" in await answer.text()
        async with http.get(callback, params=params) as again:  # the link works once
            assert again.status == 400
    queue = world.core.services.sync_queue
    if queue is not None:
        await queue.drain()  # the first sync the connect asked for
    async with world.core.store.session() as s:
        conn = await s.scalar(select(Connection).where(Connection.provider == "calendly"))
        assert conn is not None and conn.last_success_at is not None
        return conn.id


async def _expire(world: World, fake: CalendlyFake, connection_id: int) -> str:
    """Make the stored access token expired (at Calendly too); the refresh token it has stays good."""
    async with world.core.store.session() as s:
        conn = await s.get(Connection, connection_id)
        assert conn is not None
        fake.access[conn.credentials["access_token"]] = 0.0
        conn.credentials = {**conn.credentials, "expires_at": 0}
        return str(conn.credentials["refresh_token"])


async def test_connect_stores_the_pair_and_finds_every_member(world: World, fake: CalendlyFake) -> None:
    conn_id = await _connect(world, fake)
    async with world.core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None
        cals = (await s.scalars(select(Calendar).where(Calendar.connection_id == conn_id))).all()
    assert conn.account == fake.users[0]["uri"]
    assert conn.credentials["refresh_token"] in fake.refresh_tokens
    assert conn.credentials["access_token"] in fake.access
    assert sorted(c.remote_id for c in cals) == sorted(u["uri"] for u in fake.users)
    assert {c.role for c in cals} == {"source"}
    # The connect's first sync made one webhook subscription per member, each with its own signing key.
    subs = sorted(fake.subscriptions.values(), key=lambda sub: str(sub["user"]))
    assert [sub["user"] for sub in subs] == sorted(u["uri"] for u in fake.users)
    assert {sub["callback_url"] for sub in subs} == {f"{world.base}/webhooks/calendly/{conn_id}"}
    assert len({sub["signing_key"] for sub in subs}) == 2


async def test_two_refreshes_at_once_spend_one_refresh_token(world: World, fake: CalendlyFake) -> None:
    conn_id = await _connect(world, fake)
    old_refresh = await _expire(world, fake, conn_id)
    fake.token_delay = 0.05  # both providers ask while the first refresh is still at Calendly
    async with world.core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None
        cals = list((await s.scalars(select(Calendar).where(Calendar.connection_id == conn_id))).all())
        providers = [open_provider(world.core, conn, cal) for cal in cals]
    now = datetime.now(UTC)
    try:
        found = await asyncio.gather(*(p.changes(None, Window(now, now + timedelta(days=7))) for p in providers))
    finally:
        for p in providers:
            await p.aclose()  # type: ignore[attr-defined]
    assert [f.items for f in found] == [[], []]
    assert fake.refreshes == 1 and fake.spent == {old_refresh}
    async with world.core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None
    # The new pair was stored together: its refresh token is the one Calendly holds live.
    assert conn.credentials["refresh_token"] in fake.refresh_tokens
    assert fake.access[conn.credentials["access_token"]] > datetime.now(UTC).timestamp()
    assert conn.status == "active"


async def test_a_spent_refresh_token_asks_for_a_reconnect(world: World, fake: CalendlyFake) -> None:
    conn_id = await _connect(world, fake)
    refresh = await _expire(world, fake, conn_id)
    fake.refresh_tokens.discard(refresh)  # spent elsewhere (or revoked): Calendly answers invalid_grant
    await sync_connection(world.core, conn_id)
    async with world.core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None
        actions = (await s.scalars(select(AuditEntry.action))).all()
    assert conn.status == "auth_expired" and "invalid_grant" in (conn.last_error or "")
    assert "connection.auth_expired" in actions
    assert fake.refreshes == 0


async def test_a_token_calendly_stops_accepting_early_is_refreshed_once_and_the_call_retried(
    world: World, fake: CalendlyFake
) -> None:
    conn_id = await _connect(world, fake)
    async with world.core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None
        fake.access[conn.credentials["access_token"]] = 0.0  # revoked at Calendly; we think it is good
        cal = await s.scalar(select(Calendar).where(Calendar.connection_id == conn_id))
        assert cal is not None
        provider = open_provider(world.core, conn, cal)
    now = datetime.now(UTC)
    try:
        found = await provider.changes(None, Window(now, now + timedelta(days=7)))
    finally:
        await provider.aclose()  # type: ignore[attr-defined]
    assert found.items == [] and fake.refreshes == 1
    async with world.core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None and conn.credentials["access_token"] in fake.access


async def test_connect_from_chat_carries_routing_forms_on_into_the_connection(world: World, fake: CalendlyFake) -> None:
    admin = await make_actor(world.core, "UA", ("admin",))
    staff = await make_actor(world.core, "US", ("staff",))
    with pytest.raises(ParseError, match="needs a value"):
        parse("connect calendly --routing-forms")
    wrong = await handle(world.core, admin, parse("connect calendly --routing-forms maybe"))
    assert isinstance(wrong, Error) and "--routing-forms is one of on, off" in wrong.message
    unknown = await handle(world.core, admin, parse("connect calendly --forms on"))
    assert isinstance(unknown, Error) and "its options: --routing-forms" in unknown.message
    refused = await handle(world.core, staff, parse("connect calendly --routing-forms on"))
    assert isinstance(refused, Error) and refused.kind == "forbidden"
    info = await handle(world.core, admin, parse("connect calendly --routing-forms on"))
    assert isinstance(info, ConnectInfo) and info.url is not None
    state = parse_qs(urlsplit(info.url).query)["state"][0]
    async with aiohttp.ClientSession() as http:
        params = {"state": state, "code": fake.authorize()}
        async with http.get(f"{world.base}/oauth/calendly/callback", params=params) as answer:
            assert answer.status == 200, await answer.text()
    queue = world.core.services.sync_queue
    if queue is not None:
        await queue.drain()
    async with world.core.store.session() as s:
        conn = await s.scalar(select(Connection).where(Connection.provider == "calendly"))
        assert conn is not None and conn.config.get("routing_forms") == "on"
