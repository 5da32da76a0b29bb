"""An expired Google sign-in, as a clinic on Teams lives it: the bot is added to the front-desk channel
(its staff channel), the admin connects Google from a personal chat, Google later refuses the token,
and the channel gets one Reconnect card within one sync interval; after the admin signs in again,
one recovery notice in the same channel. No row is written by the test.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import build_app
from sync.boot import open_core
from sync.notify.alarms import AlarmWorker
from sync.runtime.core import Core
from sync.store.migrate import upgrade
from sync.store.model import Alarm, AuditEntry, Connection
from tests.adapters.google.conftest import PRIMARY
from tests.adapters.google.fakes.google import GoogleFake
from tests.bot.teams.conftest import BOT_MRI, TENANT, activity, teams_settings
from tests.conftest import drop_schema
from tests.e2e.conftest import NOW, TZ
from tests.fakes.bot_connector import FakeBotConnector

POLL = 2


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Running:
    def __init__(self, core: Core, url: str, connector: FakeBotConnector, session: aiohttp.ClientSession) -> None:
        self.core, self.url, self.connector, self.session = core, url, connector, session

    async def post(self, act: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {self.connector.channel_token()}"}
        async with self.session.post(self.url + "/api/messages", json=act, headers=headers) as resp:
            assert resp.status in (200, 201, 202), await resp.text()

    def texts(self, conversation_id: str) -> list[str]:
        return [json.dumps(a) for a in self.connector.recorded.activities(conversation_id)]


@pytest.fixture
async def google() -> AsyncIterator[GoogleFake]:
    fake = await GoogleFake().start()
    fake.calendars[PRIMARY].time_zone = TZ
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
def connector() -> Iterator[FakeBotConnector]:
    with FakeBotConnector(app_id="3f2a4b6c-8d0e-4f1a-9b2c-3d4e5f6a7b8c", app_password="test-bot-secret") as fake:
        yield fake


@pytest.fixture
async def running(
    backend: str, tmp_path: Path, connector: FakeBotConnector, google: GoogleFake, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Running]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", connector.ca_path)
    port = _port()
    base = f"http://127.0.0.1:{port}"
    settings = teams_settings(
        backend, tmp_path, connector, public_url=base, sync_poll_seconds=POLL,
        google_api_url=google.url, google_oauth_url=google.url, google_auth_url=f"{google.url}/o/oauth2/v2/auth",
        google_client_id=google.oauth.client_id, google_client_secret=google.oauth.client_secret,
    )
    core = open_core(settings)
    await upgrade(core.store)
    core.clock = Clock(NOW)
    server = TestServer(build_app(settings, core=core), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Running(core, base, connector, session)
    finally:
        await server.close()
        await core.close()
        await drop_schema(settings)


def _channel_install(t: Running) -> tuple[str, dict[str, Any]]:
    """The activity Teams sends when the bot is added to a channel, and the channel's id."""
    act = activity(t.connector.service_url, type="conversationUpdate", kind="channel",
                   membersAdded=[{"id": BOT_MRI, "name": "clinicbot"}])
    act["conversation"]["id"] = act["conversation"]["id"].split(";")[0]
    return str(act["conversation"]["id"]), act


async def _connect_google(t: Running, google: GoogleFake, browser: aiohttp.ClientSession) -> None:
    before = len(t.connector.recorded.activities("a:personal-1"))
    await t.post(activity(t.connector.service_url, text="connect google"))
    await t.connector.wait_for(lambda r: len(r.activities("a:personal-1")) > before)
    answer = "".join(t.texts("a:personal-1")[before:])
    found = re.search(re.escape(f"{google.url}/o/oauth2/v2/auth?") + r'[^"\s\\]+', answer)
    assert found is not None, answer
    async with browser.get(found.group(0)) as page:
        assert page.status == 200, await page.text()


async def test_an_expired_google_sign_in_brings_one_reconnect_card_to_the_teams_channel(
    running: Running, google: GoogleFake
) -> None:
    t = running
    clock = t.core.clock
    assert isinstance(clock, Clock)
    channel_id, install = _channel_install(t)
    await t.post(activity(t.connector.service_url, text="help"))  # user 1 talks first: the practice's admin
    await t.post(install)  # the bot is added to the front-desk channel: the staff channel
    async with aiohttp.ClientSession() as browser:
        await _connect_google(t, google, browser)
        async with t.core.store.session() as s:
            [conn] = (await s.scalars(select(Connection))).all()
        t.core.services.sync_queue.request(conn.id, reason="test")
        await t.core.services.sync_queue.drain()

        for token in list(google.oauth.refresh_tokens):
            google.oauth.revoke(token)
        clock.now = NOW + timedelta(seconds=POLL + 1)
        await t.connector.wait_for(lambda r: any("Reconnect" in json.dumps(a) for a in r.activities(channel_id)),
                                   timeout=POLL + 10)
        worker = t.core.services.alarm_worker
        assert isinstance(worker, AlarmWorker)
        clock.now += timedelta(minutes=5)
        await worker.settled()
        cards = [x for x in t.texts(channel_id) if "Reconnect" in x]
        assert len(cards) == 1 and "connect google" in cards[0] and PRIMARY in cards[0], cards
        assert not any("Reconnect" in x for x in t.texts("a:personal-1"))  # the channel, not DMs

        await _connect_google(t, google, browser)
    await worker.settled()
    await t.connector.wait_for(lambda r: any("Resolved" in json.dumps(a) for a in r.activities(channel_id)))
    await worker.settled()
    assert len([x for x in t.texts(channel_id) if "Resolved" in x]) == 1
    assert len([x for x in t.texts(channel_id) if "Reconnect" in x]) == 1
    async with t.core.store.session() as s:
        [again] = (await s.scalars(select(Connection))).all()
        assert again.id == conn.id and again.status == "active"
        [alarm] = (await s.scalars(select(Alarm))).all()
        assert (alarm.notice_status, alarm.recovery_status) == ("sent", "sent")
        [channel] = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "practice.staff_channel"))).all()
        assert channel.actor == f"teams:{TENANT}/29:user-1" and channel.before == {"platform": "teams",
                                                                                   "chat_identity_id": None}
