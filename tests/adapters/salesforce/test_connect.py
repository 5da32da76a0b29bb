"""Salesforce through the running server: `connect salesforce` from chat (production or sandbox) signs in
at the login host, stores the tokens with the org's instance URL, and one booking calendar per active user;
a spent sign-in link does nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import build_app
from sync.boot import open_core
from sync.integrations.connect import begin_oauth
from sync.runtime.core import Core
from sync.store.migrate import upgrade
from sync.store.model import Calendar, Connection, Practice
from tests.adapters.salesforce.fakes.salesforce import SalesforceFake
from tests.conftest import drop_schema, make_settings
from tests.servers import free_port


@pytest.fixture
async def world(backend: str, tmp_path: Path, fake: SalesforceFake) -> AsyncIterator[tuple[Core, str, int]]:
    port = free_port()
    settings = make_settings(backend, tmp_path, salesforce_login_url=fake.url,
                             salesforce_sandbox_url=fake.url + "/sandbox", salesforce_client_id=fake.client_id,
                             salesforce_client_secret=fake.client_secret, allow_private_urls=True,
                             public_url=f"http://127.0.0.1:{port}")
    core = open_core(settings)
    await upgrade(core.store)
    async with core.store.session() as s:
        practice = Practice(name="Northside Clinic", timezone="Europe/London")
        s.add(practice)
        await s.flush()
        practice_id = practice.id
    server = TestServer(build_app(core.settings, core=core), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield core, f"http://127.0.0.1:{port}", practice_id
    finally:
        await server.close()
        await core.close()
        await drop_schema(settings)


async def test_connect_from_chat_stores_the_session_the_instance_and_the_users(
        world: tuple[Core, str, int], fake: SalesforceFake) -> None:
    core, base, practice_id = world
    lee = fake.add("User", FirstName="Ann", LastName="Lee", IsActive=True)
    fake.add("User", FirstName="Old", LastName="Hand", IsActive=False)
    sandbox = await begin_oauth(core, "salesforce", practice_id=practice_id, chat_identity_id=None,
                                options={"environment": "sandbox"})
    assert sandbox.url.startswith(f"{fake.url}/sandbox/services/oauth2/authorize?")
    pending = await begin_oauth(core, "salesforce", practice_id=practice_id, chat_identity_id=None)
    link = urlsplit(pending.url)
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{fake.url}/services/oauth2/authorize"
    callback = f"{base}/oauth/salesforce/callback"
    assert parse_qs(link.query)["redirect_uri"] == [callback]
    code = fake.issue_code()
    async with aiohttp.ClientSession() as http:
        async with http.get(callback, params={"state": pending.state, "code": code}) as answer:
            assert answer.status == 200 and "Salesforce connected" in await answer.text()
        async with http.get(callback, params={"state": pending.state, "code": code}) as again:
            assert again.status == 400
    queue = core.services.sync_queue
    if queue is not None:
        await queue.drain()
    async with core.store.session() as s:
        conn = await s.scalar(select(Connection).where(Connection.provider == "salesforce"))
        assert conn is not None
        assert conn.credentials["instance_url"] == fake.url and conn.credentials["refresh_token"] in fake.refresh_tokens
        assert conn.config["instance_url"] == fake.url
        cals = (await s.scalars(select(Calendar).where(Calendar.connection_id == conn.id))).all()
        assert [c.remote_id for c in cals] == [lee] and cals[0].role == "busy"  # logging only at first
