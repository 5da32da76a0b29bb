"""Work after the Slack ack that fails for a reason other than a Slack error: the person is told
where that is possible, and the log says why, at WARNING, with context."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest

from tests.bot.slack.conftest import SlackClient


async def test_a_failure_after_the_ack_is_told_to_the_person(
    slack: SlackClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(body: object) -> None:
        raise RuntimeError("identity lookup broke")

    monkeypatch.setattr(slack.runtime.listeners, "_actor", broken)
    resp = await slack.command("cancel A-1 sick", rid="r-broken")
    assert resp.status == 200
    await slack.settle()
    [reply] = slack.fake.responses["r-broken"]
    assert "went wrong" in json.dumps(reply) and reply["response_type"] == "ephemeral"
    [record] = [r for r in caplog.records if "after the ack" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.__dict__["step"] == "slash command" and record.__dict__["error"] == "RuntimeError"


async def test_a_bad_response_url_is_logged_with_context(
    slack: SlackClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = slack.command_body("today").replace(b"response_url=", b"response_url=http%3A%2F%2F%5B%3A%3A1&x=")
    resp = await slack.post(body)
    assert resp.status == 200
    await slack.settle()
    records = [r for r in caplog.records if "after the ack" in r.getMessage()]
    assert records and all(r.levelno == logging.WARNING for r in records)
    assert records[0].__dict__["step"] == "slash command"
    assert "response_url" in records[0].__dict__["reason"] or records[0].__dict__["error"]


@pytest.mark.parametrize("field", ["user_id", "team_id"])
async def test_a_command_with_an_empty_user_or_team_is_400(slack: SlackClient, field: str) -> None:
    fields = {"team_id": "T1", "user_id": "US", "command": "/clinic", "text": "today",
              "response_url": slack.fake.response_url("r-empty"), "channel_id": "C1"}
    fields[field] = ""
    resp = await slack.post(urlencode(fields).encode())
    assert resp.status == 400
    await slack.settle()
    assert slack.fake.responses.get("r-empty") in (None, [])
