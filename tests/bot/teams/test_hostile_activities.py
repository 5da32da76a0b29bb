"""Authenticated activities of the wrong shape get a 400 at the endpoint: no turn, no identity,
no ERROR traceback. And the apology card of a failed turn reaches the user."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import func, select

from sync.store.model import ChatIdentity
from tests.bot.teams.conftest import Teams, activity


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def _identities(t: Teams) -> int:
    async with t.core.store.session() as session:
        return int(await session.scalar(select(func.count()).select_from(ChatIdentity)) or 0)


def _odd(t: Teams, case: str) -> dict[str, Any]:
    act = activity(t.connector.service_url, text="help")
    if case == "no from":
        del act["from"]
    elif case == "from without id":
        act["from"] = {"name": "Ann"}
    elif case == "from id not a string":
        act["from"] = {"id": 29}
    elif case == "empty entity":
        act["entities"] = [{}]
    elif case == "mention text not a string":
        act["entities"] = [{"type": "mention", "text": 5, "mentioned": {"id": "28:bot", "name": "x"}}]
    elif case == "mention without mentioned":
        act["entities"] = [{"type": "mention", "text": "<at>x</at>", "mentioned": "28:bot"}]
    elif case == "entities not a list":
        act["entities"] = {"type": "mention"}
    elif case == "tenant a string":
        act["channelData"] = {"tenant": "72f988bf"}
    elif case == "channelData a list":
        act["channelData"] = [1]
    elif case == "conversation id not a string":
        act["conversation"] = {"id": ["a"], "conversationType": "personal"}
    elif case == "text not a string":
        act["text"] = {"a": 1}
    elif case == "invoke action a string":
        act = activity(t.connector.service_url, type="invoke", name="adaptiveCard/action",
                       value={"action": "Action.Execute", "trigger": "manual"})
    elif case == "invoke value a list":
        act = activity(t.connector.service_url, type="invoke", name="adaptiveCard/action", value=[1])
    elif case == "invoke without a name":
        act = activity(t.connector.service_url, type="invoke", value={"action": {"type": "Action.Execute"}})
    elif case == "invoke data a string":
        act = activity(t.connector.service_url, type="invoke", name="adaptiveCard/action",
                       value={"action": {"type": "Action.Execute", "verb": "x", "data": "y"}})
    return act


CASES = [
    "no from", "from without id", "from id not a string", "empty entity", "mention text not a string",
    "mention without mentioned", "entities not a list", "tenant a string", "channelData a list",
    "conversation id not a string", "text not a string", "invoke action a string", "invoke value a list",
    "invoke data a string", "invoke without a name",
]


@pytest.mark.parametrize("case", CASES)
async def test_activities_of_the_wrong_shape_are_400(teams: Teams, caplog: pytest.LogCaptureFixture, case: str) -> None:
    status, body = await teams.post(_odd(teams, case))
    assert status == 400, body
    assert teams.connector.recorded.calls == []
    assert await _identities(teams) == 0
    assert _errors(caplog) == []


async def test_deeply_nested_json_is_400_before_authentication(
    teams: Teams, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"Content-Type": "application/json"}
    async with teams.session.post(teams.url + "/api/messages", data="[" * 100_000, headers=headers) as resp:
        assert resp.status == 400
    assert _errors(caplog) == []
