"""An inbound token botbuilder accepted is taken again for the same channel and service URL without
decoding it again, until it expires (5 minutes at most); everything else is still checked in full."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from bot.teams import TEAMS, auth
from bot.teams.auth import BotAuth
from tests.bot.teams.conftest import Teams, activity


def _checks(t: Teams, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count botbuilder's own validations (the full check of a token)."""
    bot_auth = t.app[TEAMS].adapter.bot_framework_authentication
    assert isinstance(bot_auth, BotAuth)
    seen: list[str] = []
    inner = bot_auth.inner.authenticate_request

    async def counted(act: Any, header: str) -> Any:
        seen.append(header)
        return await inner(act, header)

    monkeypatch.setattr(bot_auth.inner, "authenticate_request", counted)
    return seen


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: time.time() + seconds, monotonic=time.monotonic))


async def test_the_same_token_is_checked_once_and_each_activity_runs(
    teams: Teams, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = _checks(teams, monkeypatch)
    token = teams.token()
    for n in range(3):
        status, _ = await teams.post(activity(teams.connector.service_url, text="help", sender=n + 1), token=token)
        assert status in (200, 201)
    assert len(checks) == 1
    assert len(teams.connector.recorded.activities()) == 3
    await teams.post(activity(teams.connector.service_url, text="help"), token=teams.token(expires_in=1800))
    assert len(checks) == 2  # another token: checked in full


async def test_an_accepted_token_is_still_refused_for_another_service_url(teams: Teams) -> None:
    token = teams.token()
    status, _ = await teams.post(activity(teams.connector.service_url, text="help"), token=token)
    assert status in (200, 201)
    status, _ = await teams.post(activity("https://smba.evil.example/", text="help"), token=token)
    assert status == 401


async def test_a_refused_token_is_not_remembered(teams: Teams, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = _checks(teams, monkeypatch)
    wrong = teams.token(audience="9b9b9b9b-0000-4000-8000-000000000000")
    for _ in range(2):
        status, _ = await teams.post(activity(teams.connector.service_url, text="help"), token=wrong)
        assert status == 401
    assert len(checks) == 2
    assert teams.connector.recorded.calls == []


async def test_a_token_is_checked_again_after_five_minutes_and_refused_once_expired(
    teams: Teams, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = _checks(teams, monkeypatch)
    token = teams.token(expires_in=3600)
    act = activity(teams.connector.service_url, text="help")
    assert (await teams.post(act, token=token))[0] in (200, 201)
    _later(monkeypatch, 301)
    assert (await teams.post(act, token=token))[0] in (200, 201)
    assert len(checks) == 2

    short = teams.token(expires_in=60)  # remembered until its expiry, not for five minutes
    monkeypatch.undo()
    checks = _checks(teams, monkeypatch)
    assert (await teams.post(act, token=short))[0] in (200, 201)
    _later(monkeypatch, 61)
    assert (await teams.post(act, token=short))[0] in (200, 201)  # botbuilder allows 5 minutes of skew
    assert len(checks) == 2
