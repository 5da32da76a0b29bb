"""Validly signed Slack requests of the wrong shape: a 400 (or a normal answer), never a 500 or an
ERROR traceback, and nothing changes."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.slack.verify import sign
from tests.bot.slack.conftest import SECRET, SlackClient


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def _with(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `payload` with the dotted `path` set to `value` (list indexes as digits)."""
    out = json.loads(json.dumps(payload))
    node: Any = out
    *parents, last = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def _datepicker(slack: SlackClient) -> dict[str, Any]:
    payload = slack.action_payload("clinic.day", "")
    payload["actions"][0] = {"type": "datepicker", "action_id": "clinic.day", "block_id": "b1",
                             "selected_date": "2026-03-02", "action_ts": str(time.time())}
    payload["state"] = {"values": {"b1": {"clinic.day": {"type": "datepicker", "selected_date": "2026-03-02"}}}}
    return payload


BAD_ACTIONS: list[tuple[str, Any]] = [
    ("actions", []),
    ("actions.0.action_id", 5),
    ("actions.0.action_id", None),
    ("actions.0.value", {"x": 1}),
    ("actions.0.block_id", []),
    ("container", "C1"),
    ("container", []),
    ("channel", "C1"),
    ("team", "T1"),
    ("user.id", 7),
    ("response_url", 5),
]


@pytest.mark.parametrize(("path", "value"), BAD_ACTIONS)
async def test_block_actions_of_the_wrong_shape_are_400(
    slack: SlackClient, caplog: pytest.LogCaptureFixture, path: str, value: Any
) -> None:
    resp = await slack.interact(_with(slack.action_payload("clinic.cancel", "{}"), path, value))
    await slack.settle()
    assert resp.status == 400
    assert _errors(caplog) == []


@pytest.mark.parametrize(("path", "value"), [
    ("state", "x"), ("state.values", "x"), ("state.values", []), ("state.values.b1", 3),
    ("actions.0.selected_date", 5), ("actions.0.selected_date", ["2026-03-02"]),
])
async def test_date_pickers_of_the_wrong_shape_are_400(
    slack: SlackClient, caplog: pytest.LogCaptureFixture, path: str, value: Any
) -> None:
    resp = await slack.interact(_with(_datepicker(slack), path, value))
    await slack.settle()
    assert resp.status == 400
    assert _errors(caplog) == []


@pytest.mark.parametrize("payload", ["[1]", "true", "1", "null", '"text"', "[" * 100_000])
async def test_payloads_that_are_not_objects_are_400(
    slack: SlackClient, caplog: pytest.LogCaptureFixture, payload: str
) -> None:
    resp = await slack.post(urlencode({"payload": payload}).encode())
    assert resp.status == 400
    assert _errors(caplog) == []


async def test_a_view_submission_with_odd_state_is_400(slack: SlackClient, caplog: pytest.LogCaptureFixture) -> None:
    from tests.bot.slack.conftest import submission_payload

    for path, value in [("view.state", 1), ("view.state.values", "x"), ("view.private_metadata", 5),
                        ("view.callback_id", {}), ("team", "T1")]:
        resp = await slack.interact(_with(submission_payload("{}", "2026-03-02", "10:00", 1), path, value))
        assert resp.status == 400, path
    await slack.settle()
    assert _errors(caplog) == []


@pytest.mark.parametrize("stamp", ["¹765000000", "١٧٦٥٠٠٠٠٠٠", "1" * 40, "-5", " 17"])
async def test_a_non_ascii_timestamp_is_401_not_500(
    slack: SlackClient, caplog: pytest.LogCaptureFixture, stamp: str
) -> None:
    body = slack.command_body("today")
    resp = await slack.post(body, headers={"X-Slack-Request-Timestamp": stamp,
                                           "X-Slack-Signature": sign(SECRET, stamp, body)})
    assert resp.status == 401
    assert _errors(caplog) == []
