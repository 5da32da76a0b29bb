"""A running clinicbot server with the Teams front end, a loopback Bot Connector, and builders for
the Activity JSON Teams sends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botframework.connector.auth import JwtTokenExtractor

from bot.app import build_app
from bot.teams import TEAMS
from bot.teams.endpoint import MessagesEndpoint
from sync.boot import open_core
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from tests.conftest import drop_schema, make_settings
from tests.fakes.bot_connector import FakeBotConnector

APP_ID = "3f2a4b6c-8d0e-4f1a-9b2c-3d4e5f6a7b8c"
APP_PASSWORD = "test-bot-secret"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BOT_MRI = f"28:{APP_ID}"
#: `post(token=AUTO)` signs a valid channel token.
AUTO = "<sign>"
#: How long the endpoint waits for a turn before it acknowledges with 202 and lets the turn finish
#: later (10 s in production). Tests read a turn's outcome right after their POST, and on a loaded
#: machine a turn took longer than 10 s; the acknowledge-first path has its own test.
TEST_ACK_AFTER = 600.0


@dataclass
class Teams:
    """What a test drives: the server's URL, the fake connector, the core behind the server."""

    url: str
    connector: FakeBotConnector
    core: Core
    settings: Settings
    app: web.Application
    session: aiohttp.ClientSession

    def token(self, **kwargs: Any) -> str:
        return self.connector.channel_token(**kwargs)

    async def post(
        self, activity: dict[str, Any], *, token: str | None = AUTO, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """POST an activity to /api/messages; `token="auto"` signs a valid channel token."""
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token == AUTO and self.settings.microsoft_app_id:
            token = self.token()
        if token and token != AUTO:
            hdrs["Authorization"] = f"Bearer {token}"
        async with self.session.post(self.url + "/api/messages", json=activity, headers=hdrs) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body


def card_nodes(card: Any, wanted: str | Callable[[str], bool]) -> list[dict[str, Any]]:
    """Every object in an Adaptive Card (or a part of one), depth first in card order, whose "type" is
    `wanted` (or passes it when it is a test)."""
    test = wanted if callable(wanted) else wanted.__eq__
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if test(str(node.get("type", ""))):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card)
    return found


def is_action(kind: str) -> bool:
    return kind.startswith("Action.")


def user(n: int = 1, name: str = "") -> dict[str, str]:
    return {"id": f"29:user-{n}", "name": name or f"User {n}", "aadObjectId": str(uuid.UUID(int=n))}


def conversation(kind: str = "personal", n: int = 1) -> dict[str, Any]:
    ids = {
        "personal": f"a:personal-{n}",
        "groupChat": f"19:group-{n}@thread.v2",
        "channel": f"19:channel-{n}@thread.tacv2;messageid=17000000{n}",
    }
    conv: dict[str, Any] = {
        "id": ids[kind],
        "conversationType": kind,
        "tenantId": TENANT,
        "isGroup": kind != "personal",
    }
    if kind == "channel":
        conv["name"] = "Front desk"
    return conv


def activity(
    service_url: str,
    *,
    type: str = "message",
    text: str | None = None,
    sender: int = 1,
    kind: str = "personal",
    **extra: Any,
) -> dict[str, Any]:
    """An Activity as Teams posts it."""
    act: dict[str, Any] = {
        "type": type,
        "id": uuid.uuid4().hex[:16],
        "timestamp": "2026-03-02T09:00:00.000Z",
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": user(sender),
        "conversation": conversation(kind, sender if kind == "personal" else 1),
        "recipient": {"id": BOT_MRI, "name": "clinicbot"},
        "channelData": {"tenant": {"id": TENANT}},
        "locale": "en-GB",
    }
    if text is not None:
        act["text"] = text
        act["textFormat"] = "plain"
    act.update(extra)
    return act


def mention_text(command: str, bot_name: str = "clinicbot") -> tuple[str, list[dict[str, Any]]]:
    """Channel text with the bot's @mention and the mention entity Teams attaches."""
    at = f"<at>{bot_name}</at>"
    return f"{at} {command}", [
        {"type": "mention", "text": at, "mentioned": {"id": BOT_MRI, "name": bot_name}}
    ]


@pytest.fixture
def connector() -> Iterator[FakeBotConnector]:
    with FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as fake:
        yield fake


async def _serve(settings: Settings) -> AsyncIterator[tuple[str, Core, web.Application]]:
    from sync.store.migrate import upgrade

    core = open_core(settings)
    await upgrade(core.store)
    # The signing keys are cached process-wide by metadata URL, and a fake's port can come again:
    # a test must not find the keys of an earlier test's fake (its tokens were refused unfetched).
    JwtTokenExtractor.metadataCache.clear()
    app = build_app(settings, core=core)
    endpoint = app.get(TEAMS)
    if isinstance(endpoint, MessagesEndpoint):
        endpoint.ack_after = TEST_ACK_AFTER
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), core, app
    finally:
        await server.close()
        await core.close()
        await drop_schema(settings)


def teams_settings(
    backend: str, tmp_path: Path, connector: FakeBotConnector, *, auth: bool = True, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "public_url": "https://clinic.example.net",
        "login_url": connector.https_url,
        "botframework_openid_url": connector.openid_url,
        "botframework_token_url": connector.token_url,
    }
    if auth:
        values.update(microsoft_app_id=APP_ID, microsoft_app_password=APP_PASSWORD)
    values.update(overrides)
    return make_settings(backend, tmp_path, **values)


@pytest.fixture
async def teams(
    backend: str, tmp_path: Path, connector: FakeBotConnector, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Teams]:
    """A server with Teams authentication on, talking to the fake connector."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", connector.ca_path)
    settings = teams_settings(backend, tmp_path, connector)
    async for url, core, app in _serve(settings):
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            yield Teams(url, connector, core, settings, app, session)


@pytest.fixture
async def teams_open(backend: str, tmp_path: Path, connector: FakeBotConnector) -> AsyncIterator[Teams]:
    """A server with Teams authentication OFF (no MicrosoftAppId)."""
    connector.app_password = None  # an anonymous bot sends no token; the fake must not insist
    settings = teams_settings(backend, tmp_path, connector, auth=False)
    async for url, core, app in _serve(settings):
        async with aiohttp.ClientSession() as session:
            yield Teams(url, connector, core, settings, app, session)
