"""Connecting Google and Outlook end to end: a practitioner types `connect` in Slack, signs in, the
platform redirects to the server's OAuth callback, and the booking on their calendar is in
`/clinic today` after the next sync. No connection or calendar row is written by the test: the
connect stores them, as a clinic would see it.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from adapters.graph.connection import GraphTransports
from bot.app import build_app
from bot.slack.server import SLACK
from sync.boot import open_core
from sync.runtime.core import Core
from sync.services.practices import add_practitioner, create_practice
from sync.store.model import Calendar, Connection
from tests.adapters.google.conftest import PRIMARY
from tests.adapters.google.fakes.google import GoogleFake
from tests.adapters.graph.conftest import CLIENT_ID, CLIENT_SECRET, TENANT
from tests.adapters.graph.fakes.graph import GraphFake
from tests.bot.slack.conftest import SlackClient, slack_settings
from tests.conftest import drop_schema
from tests.e2e.conftest import NOW, TZ, at, e2e_settings
from tests.e2e.conftest import fake_slack as fake_slack  # the fixture, imported from here by graph and nylas tests
from tests.fakes.slack import FakeSlack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Clinic:
    """The running server (Slack front end, sync worker, OAuth callback) on a known loopback port."""

    core: Core
    slack: SlackClient
    base_url: str
    browser: aiohttp.ClientSession

    async def say(self, text: str, user: str, rid: str) -> str:
        """A signed `/clinic` command; the answer that arrives through its response_url, as JSON text."""
        assert (await self.slack.command(text, user=user, rid=rid)).status == 200
        await self.slack.fake.wait_for(lambda: self.slack.fake.responses[rid])
        return json.dumps(self.slack.fake.responses[rid][-1])

    async def connection(self) -> Connection:
        async with self.core.store.session() as s:
            [conn] = (await s.scalars(select(Connection))).all()
            return conn

    async def calendars(self) -> list[Calendar]:
        async with self.core.store.session() as s:
            return list((await s.scalars(select(Calendar).order_by(Calendar.id))).all())

    async def sync(self, connection_id: int) -> None:
        queue = self.core.services.sync_queue
        queue.request(connection_id, reason="e2e")
        await queue.drain()


async def run_clinic(backend: str, tmp_path: Path, fake_slack: FakeSlack, **settings: Any) -> AsyncIterator[Clinic]:
    """A fresh practice with Dr Lee (as `clinicbot practice create` and `practitioner add` leave it),
    served on a port known before start, so the OAuth redirect comes back to it."""
    from sync.store.migrate import upgrade

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    values = e2e_settings(backend, tmp_path, public_url=base_url, **settings)
    core = open_core(values)
    await upgrade(core.store)
    core.clock = lambda: NOW
    async with core.store.session() as s:
        practice = await create_practice(s, "Lee Clinic", TZ, actor="cli:e2e")
        await add_practitioner(s, practice, "Dr Lee", email=None, tz=None, actor="cli:e2e")
    app = build_app(slack_settings(values, fake_slack), core=core)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session, aiohttp.ClientSession() as browser:
            slack = SlackClient(base_url, session, fake_slack, app[SLACK], core, None)  # type: ignore[arg-type]
            yield Clinic(core, slack, base_url, browser)
    finally:
        await server.close()
        await core.close()
        await drop_schema(values)


def sign_in_link(answer: str, prefix: str) -> str:
    """The sign-in button's URL in a Slack answer."""
    found = re.search(re.escape(prefix) + r'[^"\s]+', answer)
    assert found is not None, answer
    return found.group(0)


async def practitioner_connects(clinic: Clinic, word: str) -> str:
    """The admin (first to use /clinic) links Slack user UP to Dr Lee; UP types `connect <word>`."""
    granted = await clinic.say("role grant practitioner <@UP|pat> @dr-lee", "US", "grant")
    assert "now has the practitioner role" in granted, granted
    return await clinic.say(f"connect {word}", "UP", "connect")


@pytest.fixture
async def google() -> AsyncIterator[GoogleFake]:
    fake = await GoogleFake().start()
    fake.calendars[PRIMARY].time_zone = TZ
    fake.add_calendar("holidays@group.calendar.example", "Public holidays", access_role="reader")
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def google_clinic(
    backend: str, tmp_path: Path, fake_slack: FakeSlack, google: GoogleFake
) -> AsyncIterator[Clinic]:
    async for clinic in run_clinic(
        backend, tmp_path, fake_slack,
        google_api_url=google.url, google_drive_url=google.url, google_oauth_url=google.url,
        google_auth_url=f"{google.url}/o/oauth2/v2/auth",
        google_client_id=google.oauth.client_id, google_client_secret=google.oauth.client_secret,
    ):
        yield clinic


async def test_google_connect_from_chat_to_today(google_clinic: Clinic, google: GoogleFake) -> None:
    clinic = google_clinic
    answer = await practitioner_connects(clinic, "google")
    link = sign_in_link(answer, f"{google.url}/o/oauth2/v2/auth?")
    assert f"redirect_uri={clinic.base_url}/oauth/google/callback".replace(":", "%3A").replace("/", "%2F") in link

    # The person signs in; Google sends the browser back to the server's callback, which says what it found.
    async with clinic.browser.get(link) as page:
        text = await page.text()
    assert page.status == 200, text
    assert str(page.url).startswith(f"{clinic.base_url}/oauth/google/callback?")
    assert "Google Calendar connected" in text and "Dr Lee: source" in text
    assert "Public holidays: busy (read only)" in text
    # ...and the person who typed `connect` is told the same in chat.
    fake = clinic.slack.fake
    await fake.wait_for(lambda: fake.calls_to("chat.postMessage"))
    [told] = fake.calls_to("chat.postMessage")
    dm = json.dumps(told.args)
    assert "Google Calendar connected" in dm and "Dr Lee (source)" in dm and "Public holidays (busy, read only)" in dm

    conn = await clinic.connection()
    assert conn.provider == "google" and conn.account == PRIMARY and conn.practitioner_id is not None
    calendars = {c.remote_id: c for c in await clinic.calendars()}
    assert calendars[PRIMARY].role == "source" and not calendars[PRIMARY].read_only
    assert calendars["holidays@group.calendar.example"].role == "busy"
    assert calendars["holidays@group.calendar.example"].read_only

    # A booking on the practitioner's Google calendar is in today's agenda after the next sync.
    google.server_insert(PRIMARY, {
        "summary": "Physio: Jane Roe",
        "start": {"dateTime": at(10).isoformat(), "timeZone": TZ},
        "end": {"dateTime": at(10, 30).isoformat(), "timeZone": TZ},
    })
    await clinic.sync(conn.id)
    agenda = await clinic.say("today", "US", "agenda")
    assert "Jane Roe" in agenda and "10:00" in agenda, agenda

    # The sign-in link worked once.
    async with clinic.browser.get(link) as again:
        assert again.status == 400 and "already used" in await again.text()


@pytest.fixture
async def graph() -> AsyncIterator[GraphFake]:
    fake = GraphFake()
    await fake.start()
    fake.login.register_app(CLIENT_ID, CLIENT_SECRET)
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def graph_clinic(backend: str, tmp_path: Path, fake_slack: FakeSlack, graph: GraphFake) -> AsyncIterator[Clinic]:
    async for clinic in run_clinic(
        backend, tmp_path, fake_slack,
        graph_url=graph.url, graph_client_id=CLIENT_ID, graph_client_secret=CLIENT_SECRET,
    ):
        # MSAL keeps the public authority in its URLs; this routes them to the fake.
        clinic.core.services.http_transport = GraphTransports(login=graph.login.http_client(graph.url))
        yield clinic


async def test_outlook_connect_from_chat_to_today(graph_clinic: Clinic, graph: GraphFake) -> None:
    clinic = graph_clinic
    mailbox = graph.add_user("dr.lee@clinic.example", tenant_id=TENANT)
    answer = await practitioner_connects(clinic, "outlook")
    link = sign_in_link(answer, "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?")

    # The person signs in; Microsoft sends the browser back to the server's callback with the code.
    back = graph.login.approve(link, mailbox.user.upn)
    async with clinic.browser.get(f"{clinic.base_url}/oauth/graph/callback?{urlencode(back)}") as page:
        text = await page.text()
    assert page.status == 200, text
    assert "Microsoft 365 / Outlook connected" in text and "Calendar: source" in text

    conn = await clinic.connection()
    assert conn.provider == "graph" and conn.account == mailbox.user.upn and conn.practitioner_id is not None
    [calendar] = await clinic.calendars()
    assert calendar.remote_id == "me/calendar" and calendar.role == "source" and not calendar.read_only

    start, end = at(10).astimezone(UTC), at(10, 30).astimezone(UTC)
    graph.put_event(mailbox, {
        "subject": "Physio: Jane Roe",
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
    })
    await clinic.sync(conn.id)
    agenda = await clinic.say("today", "US", "agenda")
    assert "Jane Roe" in agenda and "10:00" in agenda, agenda
