"""HubSpot through the running server: `connect hubspot` from chat signs in, stores the tokens, makes the
visit-key property and one booking calendar per owner; an expired access token is refreshed; a v3-signed
webhook delivery to the connection's address makes a meeting made in HubSpot a booking, while forged and
stale deliveries change nothing."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from adapters.hubspot.meetings import KEY_PROPERTY, ms
from bot.app import build_app
from sync.boot import open_core
from sync.contract.items import Window
from sync.integrations.connect import begin_oauth
from sync.integrations.providers import open_provider
from sync.integrations.push import ensure_push
from sync.runtime.core import Core
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Calendar, Connection, Practice, Practitioner
from tests.adapters.hubspot.fakes.hubspot import HubSpotFake
from tests.conftest import drop_schema, make_settings
from tests.servers import free_port


@dataclass
class World:
    core: Core
    base: str
    practice_id: int


@pytest.fixture
async def world(backend: str, tmp_path: Path, fake: HubSpotFake) -> AsyncIterator[World]:
    port = free_port()
    settings = make_settings(backend, tmp_path, hubspot_api_url=fake.url, hubspot_auth_url=fake.url,
                             hubspot_client_id=fake.client_id, hubspot_client_secret=fake.client_secret,
                             public_url=f"http://127.0.0.1:{port}")
    core = open_core(settings)
    await upgrade(core.store)
    fake.add_owner("Ann", "Lee", "lee@northside.example")
    fake.add_owner("Bo", "Ng", "ng@northside.example")
    async with core.store.session() as s:
        practice = Practice(name="Northside Clinic", timezone="Europe/London")
        s.add(practice)
        await s.flush()
        s.add(Practitioner(practice_id=practice.id, name="Dr Ann Lee", handle="dr-lee", timezone="Europe/London"))
        practice_id = practice.id
    server = TestServer(build_app(core.settings, core=core), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield World(core, f"http://127.0.0.1:{port}", practice_id)
    finally:
        await server.close()
        await core.close()
        await drop_schema(settings)


async def drain(world: World) -> None:
    queue = world.core.services.sync_queue
    if queue is not None:
        await queue.drain()


async def connect(world: World, fake: HubSpotFake, options: dict[str, str] | None = None) -> int:
    pending = await begin_oauth(world.core, "hubspot", practice_id=world.practice_id, chat_identity_id=None,
                                options=options)
    link = urlsplit(pending.url)
    query = parse_qs(link.query)
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{fake.url}/oauth/authorize"
    assert query["client_id"] == [fake.client_id] and "crm.objects.contacts.write" in query["scope"][0]
    callback = f"{world.base}/oauth/hubspot/callback"
    assert query["redirect_uri"] == [callback]
    async with aiohttp.ClientSession() as http:
        async with http.get(callback, params={"state": pending.state, "code": fake.issue_code()}) as answer:
            assert answer.status == 200 and "HubSpot connected" in await answer.text()
    await drain(world)
    async with world.core.store.session() as s:
        conn = await s.scalar(select(Connection).where(Connection.provider == "hubspot"))
        assert conn is not None
        return conn.id


async def test_connect_from_chat_stores_tokens_the_key_property_and_the_owners(world: World,
                                                                               fake: HubSpotFake) -> None:
    conn_id = await connect(world, fake)
    async with world.core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None
        cals = (await s.scalars(select(Calendar).where(Calendar.connection_id == conn_id))).all()
        assert conn.account == "northside.hubspot.com" and conn.config["portal_id"] == str(fake.portal_id)
        assert conn.credentials["refresh_token"] in fake.refresh_tokens
        assert sorted(c.remote_id for c in cals) == sorted(o["id"] for o in fake.owners)
        # An expired access token is refreshed on the next use, and the new one stored.
        fake.access[conn.credentials["access_token"]] = 0.0
        conn.credentials = {**conn.credentials, "expires_at": 0}
        old = conn.credentials["access_token"]
        cal = cals[0]
    assert KEY_PROPERTY in fake.custom["meetings"]
    provider = open_provider(world.core, conn, cal)
    try:
        now = datetime.now(UTC)
        await provider.changes(None, Window(now, now + timedelta(days=1)))
    finally:
        await provider.aclose()
    async with world.core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None and conn.credentials["access_token"] != old
        assert conn.credentials["access_token"] in fake.access


async def test_a_signed_delivery_makes_a_hubspot_meeting_a_booking_and_forged_or_stale_ones_do_nothing(
        world: World, fake: HubSpotFake) -> None:
    conn_id = await connect(world, fake)
    lee = fake.owners[0]["id"]
    async with world.core.store.session() as s:
        cal = await s.scalar(select(Calendar).where(Calendar.connection_id == conn_id, Calendar.remote_id == lee))
        pr = await s.scalar(select(Practitioner).where(Practitioner.practice_id == world.practice_id))
        assert cal is not None and pr is not None and cal.role == "busy"  # logging only, until the admin says
        cal.practitioner_id, cal.role = pr.id, "source"  # `staff map hubspot <owner> @dr-lee`, `calendar set`
    await ensure_push(world.core, conn_id)  # the renewal job opens the source calendar's channel
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    jane = fake.add_contact("jane@client.example", "Jane", "Roe")
    fake.add_meeting({"hs_timestamp": ms(start), "hs_meeting_start_time": ms(start),
                      "hs_meeting_end_time": ms(start + timedelta(minutes=45)), "hs_meeting_title": "Reiki",
                      "hubspot_owner_id": lee, "hs_meeting_outcome": "SCHEDULED"}, contact=jane)
    url = f"{world.base}/webhooks/hubspot/{conn_id}"
    body = json.dumps([{"eventId": 501, "portalId": fake.portal_id, "subscriptionType": "object.creation",
                        "objectTypeId": "0-47", "objectId": 1}]).encode()
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=body, headers=fake.signed(url, body, secret="guess")) as forged:
            assert forged.status == 401
        stale_at = int((time.time() - 400) * 1000)
        async with http.post(url, data=body, headers=fake.signed(url, body, at_ms=stale_at)) as stale:
            assert stale.status == 401
        await drain(world)
        async with world.core.store.session() as s:
            assert (await s.scalars(select(Appointment))).all() == []
        async with http.post(url, data=body, headers=fake.signed(url, body)) as good:
            assert good.status == 200
        await drain(world)
        async with http.post(url, data=body, headers=fake.signed(url, body)) as replay:
            assert replay.status == 401
    async with world.core.store.session() as s:
        [appt] = (await s.scalars(select(Appointment))).all()
        assert appt.practitioner_id == pr.id and appt.client_email == "jane@client.example"
        assert appt.start == start and appt.service == "Reiki"


def test_the_cli_connects_a_private_app_token_and_lists_the_owners(tmp_path: Path) -> None:
    import asyncio
    import functools

    from tests.servers import run_cli

    async def scenario() -> None:
        run = functools.partial(asyncio.to_thread, run_cli)
        fake = await HubSpotFake().start()
        fake.add_owner("Ann", "Lee", "lee@northside.example")
        env = {"CLINICBOT_HUBSPOT_API_URL": fake.url, "HUBSPOT_TOKEN": fake.token}
        try:
            assert (await run(["db", "upgrade"], tmp_path)).returncode == 0
            added = await run(["connection", "add", "hubspot", "--username", "northside",
                               "--password-env", "HUBSPOT_TOKEN", "--json"], tmp_path, env)
            assert added.returncode == 0, added.stderr
            assert fake.token not in added.stdout + added.stderr
            listed = json.loads((await run(["connection", "list", "--json"], tmp_path, env)).stdout)
            assert [c["provider"] for c in listed] == ["hubspot"]
            assert fake.count("GET", "/crm/v3/owners") >= 1
        finally:
            await fake.close()

    asyncio.run(scenario())


async def test_forms_chosen_at_connect_reach_the_config(world: World, fake: HubSpotFake) -> None:
    conn_id = await connect(world, fake, {"forms": "f-1,f-2", "form_service_field": "treatment"})
    async with world.core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None
        assert (conn.config["forms"], conn.config["form_service_field"]) == ("f-1,f-2", "treatment")
        assert "form_times_field" not in conn.config
