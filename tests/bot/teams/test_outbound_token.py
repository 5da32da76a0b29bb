"""Without an outbound Bot Connector token (a wrong app password, Entra unreachable) activities are
still answered 2xx, so Teams does not retry each one; the failure is logged once and shown in
/readyz and `clinicbot doctor`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.bot.teams.conftest import APP_ID, Teams, _serve, activity, teams_settings
from tests.fakes.bot_connector import FakeBotConnector
from tests.servers import run_cli


@pytest.fixture
async def teams_wrong_password(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Teams]:
    with FakeBotConnector(app_id=APP_ID, app_password="the-real-secret") as connector:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", connector.ca_path)
        settings = teams_settings(backend, tmp_path, connector)  # carries another password
        async for url, core, app in _serve(settings):
            async with aiohttp.ClientSession() as session:
                yield Teams(url, connector, core, settings, app, session)


async def test_activities_are_accepted_and_the_failure_is_logged_once(
    teams_wrong_password: Teams, caplog: pytest.LogCaptureFixture
) -> None:
    t = teams_wrong_password
    caplog.set_level(logging.INFO)
    statuses = [(await t.post(activity(t.connector.service_url, text="help")))[0] for _ in range(3)]
    assert all(200 <= s < 300 for s in statuses), statuses
    about_token = [r for r in caplog.records if "Bot Connector" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(about_token) == 1, [r.getMessage() for r in about_token]
    assert not [r for r in caplog.records if r.exc_info]
    async with t.session.get(t.url + "/readyz") as resp:
        body = await resp.json()
    assert "Bot Connector" in body["components"]["teams"]
    assert "AADSTS7000215" in body["components"]["teams"]


async def test_an_invoke_without_a_token_gets_an_error_body_not_a_500(teams_wrong_password: Teams) -> None:
    t = teams_wrong_password
    invoke = activity(t.connector.service_url, type="invoke", name="adaptiveCard/action",
                      value={"action": {"type": "Action.Execute", "verb": "today", "data": {}}})
    status, body = await t.post(invoke)
    assert status == 200
    assert body["statusCode"] == 503 and "try again" in body["value"]["message"]


def test_doctor_names_a_bot_connector_sign_in_failure(tmp_path: Path) -> None:
    with FakeBotConnector(app_id=APP_ID, app_password="the-real-secret") as connector:
        env = {"MicrosoftAppId": APP_ID, "MicrosoftAppPassword": "a-wrong-secret",
               "CLINICBOT_BOTFRAMEWORK_TOKEN_URL": connector.token_url, "REQUESTS_CA_BUNDLE": connector.ca_path}
        run_cli(["db", "upgrade"], tmp_path, env)
        result = run_cli(["doctor"], tmp_path, env)
        assert "✗ Teams: cannot sign in to the Bot Connector" in result.stdout, result.stdout
        assert "AADSTS7000215" in result.stdout
        assert result.returncode == 1
        right = run_cli(["doctor"], tmp_path, {**env, "MicrosoftAppPassword": "the-real-secret"})
        assert "✓ Teams: signs in to the Bot Connector" in right.stdout, right.stdout
