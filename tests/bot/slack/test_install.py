"""Multi-workspace install through Bolt's OAuth flow, with the stores on our database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select, text

from bot.app import STATUS, build_app
from bot.commands import resolve_actor
from bot.slack.server import SLACK
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.store.model import Practice
from tests.bot.slack.conftest import slack_settings
from tests.fakes.slack import FakeSlack


@pytest.fixture
async def oauth_server(core: Core, settings: Settings, fake_slack: FakeSlack) -> AsyncIterator[tuple[str, object]]:
    s = slack_settings(
        settings,
        fake_slack,
        slack_bot_token=None,
        slack_client_id=fake_slack.client_id,
        slack_client_secret=fake_slack.client_secret,
        public_url="https://bot.example.org",
    )
    app = build_app(s, core=core)
    assert app[STATUS]["slack"] == "enabled"
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), app
    await server.close()


async def test_install_stores_an_encrypted_token_and_makes_the_installer_admin(
    core: Core, fake_slack: FakeSlack, oauth_server: tuple[str, object]
) -> None:
    url, app = oauth_server
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(url + "/slack/install") as resp:
            page = await resp.text()
            assert resp.status == 200
        state = re.search(r"state=([\w-]+)", page)
        assert state is not None and "bot.example.org/slack/oauth_redirect" in page.replace("%3A", ":").replace(
            "%2F", "/"
        )
        fake_slack.add_oauth_code("code-1", "T77", "Riverside Clinic", "UINSTALLER", "xoxb-t77-secret-token")
        cookie = f"slack-app-oauth-state={state.group(1)}"
        async with http.get(
            f"{url}/slack/oauth_redirect?code=code-1&state={state.group(1)}", headers={"Cookie": cookie}
        ) as resp:
            assert resp.status == 200, await resp.text()
        # The same state cannot be used twice.
        async with http.get(
            f"{url}/slack/oauth_redirect?code=code-1&state={state.group(1)}", headers={"Cookie": cookie}
        ) as resp:
            assert resp.status >= 400
    async with core.store.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT bot_token FROM slack_bots WHERE team_id = 'T77'"))).scalar_one()
    assert stored.startswith("v1:") and "xoxb" not in stored
    runtime = app[SLACK]  # type: ignore[index]
    bot = await runtime.bolt.installation_store.async_find_bot(enterprise_id=None, team_id="T77")
    assert bot is not None and bot.bot_token == "xoxb-t77-secret-token"
    installer = await resolve_actor(core, "slack", "T77", "UINSTALLER")
    assert installer.roles == {"admin"}
    async with core.store.session() as s:
        practice = await s.get(Practice, installer.practice_id)
        assert practice is not None and practice.slack_team_id == "T77"
        assert await s.scalar(select(Practice.id).where(Practice.slack_team_id == "T77")) == practice.id


async def test_bad_code_is_refused_and_stores_nothing(
    core: Core, fake_slack: FakeSlack, oauth_server: tuple[str, object]
) -> None:
    url, _ = oauth_server
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/slack/install") as resp:
            state = re.search(r"state=([\w-]+)", await resp.text())
        assert state is not None
        async with http.get(
            f"{url}/slack/oauth_redirect?code=forged&state={state.group(1)}",
            headers={"Cookie": f"slack-app-oauth-state={state.group(1)}"},
        ) as resp:
            assert resp.status >= 400
    async with core.store.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM slack_bots"))).scalar_one() == 0


async def test_missing_secrets_disable_slack_without_crashing(core: Core, settings: Settings) -> None:
    app = build_app(settings, core=core)
    assert app[STATUS]["slack"].startswith("disabled: not configured")
    half = build_app(settings.model_copy(update={"slack_bot_token": "xoxb-1"}), core=core)
    assert app[STATUS]["slack"] != half[STATUS]["slack"]
    assert half[STATUS]["slack"] == "disabled: SLACK_SIGNING_SECRET is not set"
