"""Socket Mode: with SLACK_APP_TOKEN the bot dials out to Slack and answers envelopes there."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from bot.app import STATUS, build_app
from bot.slack.server import SLACK
from bot.slack.socket_mode import ClosingSocketModeClient
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from tests.bot.clinic import seed
from tests.bot.slack.conftest import slack_settings
from tests.fakes.slack import FakeSlack

APP_TOKEN = "xapp-1-test"


async def test_slash_command_over_socket_mode(core: Core, settings: Settings, fake_slack: FakeSlack) -> None:
    await seed(core)
    fake_slack.app_tokens.add(APP_TOKEN)
    app = build_app(
        slack_settings(settings, fake_slack, slack_app_token=APP_TOKEN, slack_signing_secret=None), core=core
    )
    assert app[STATUS]["slack"] == "enabled"
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        await fake_slack.socket_outbox.put(
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": {
                    "team_id": "T1",
                    "user_id": "U1",
                    "user_name": "u1",
                    "command": "/clinic",
                    "text": "reschedule nonsense",
                    "channel_id": "C1",
                    "response_url": fake_slack.response_url("sock"),
                    "trigger_id": "t",
                },
            }
        )
        await fake_slack.wait_for(lambda: fake_slack.socket_acks, within=10)
        [ack] = fake_slack.socket_acks
        assert ack["envelope_id"] == "env-1"
        assert "not an appointment id" in str(ack["payload"])
        await fake_slack.socket_outbox.put(
            {
                "envelope_id": "env-2",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": {
                    "team_id": "T1",
                    "user_id": "U1",
                    "user_name": "u1",
                    "command": "/clinic",
                    "text": "whoami",
                    "channel_id": "C1",
                    "response_url": fake_slack.response_url("sock2"),
                    "trigger_id": "t2",
                },
            }
        )
        await fake_slack.wait_for(lambda: fake_slack.responses["sock2"], within=10)
        assert "You are" in str(fake_slack.responses["sock2"][0])
    finally:
        await server.close()


def _socket_mode_tasks() -> list[asyncio.Task[Any]]:
    """Tasks still running code of slack_sdk's Socket Mode client."""
    found = []
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if not task.done() and code is not None and "slack_sdk" in code.co_filename and "socket_mode" in code.co_filename:
            found.append(task)
    return found


def _whoami(envelope: str, response_url: str) -> dict[str, Any]:
    return {
        "envelope_id": envelope,
        "type": "slash_commands",
        "accepts_response_payload": True,
        "payload": {"team_id": "T1", "user_id": "U1", "user_name": "u1", "command": "/clinic", "text": "whoami",
                    "channel_id": "C1", "response_url": response_url, "trigger_id": "t"},
    }


async def test_closing_the_server_ends_every_socket_mode_task(
    core: Core, settings: Settings, fake_slack: FakeSlack
) -> None:
    """close() waits for the client's reader, processor and monitor and for the envelopes in progress:
    none is left running once the server has shut down (issue 21)."""
    await seed(core)
    fake_slack.app_tokens.add(APP_TOKEN)
    app = build_app(
        slack_settings(settings, fake_slack, slack_app_token=APP_TOKEN, slack_signing_secret=None), core=core
    )
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    closed = False
    try:
        assert _socket_mode_tasks() != []  # the client is running
        await fake_slack.socket_outbox.put(_whoami("env-1", fake_slack.response_url("s1")))
        await fake_slack.wait_for(lambda: fake_slack.responses["s1"], within=10)
        await app[SLACK].socket.close_async()  # what the Slack runtime's shutdown calls first
        assert app[SLACK].socket.client.closed
        assert _socket_mode_tasks() == []
        await server.close()
        closed = True
        assert _socket_mode_tasks() == []
    finally:
        if not closed:
            await server.close()


async def test_close_cancels_an_envelope_still_running_after_the_grace_and_waits_for_it() -> None:
    client = ClosingSocketModeClient(app_token=APP_TOKEN, grace=0)
    started, never = asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def stuck(_client: Any, message: dict[str, Any], _raw: str) -> None:
        started.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            seen.append(f"cancelled {message['envelope_id']}")
            raise

    client.message_listeners.append(stuck)
    await client.enqueue_message(json.dumps({"type": "events_api", "envelope_id": "e1"}))
    await started.wait()
    await client.close()
    assert seen == ["cancelled e1"]
    assert client.handling == set() and _socket_mode_tasks() == []


async def test_close_lets_an_envelope_in_progress_finish() -> None:
    client = ClosingSocketModeClient(app_token=APP_TOKEN, grace=30)
    started, release = asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def slow(_client: Any, message: dict[str, Any], _raw: str) -> None:
        started.set()
        await release.wait()
        seen.append(f"answered {message['envelope_id']}")

    client.message_listeners.append(slow)
    await client.enqueue_message(json.dumps({"type": "events_api", "envelope_id": "e1"}))
    await started.wait()
    closing = asyncio.create_task(client.close())
    while not client.aiohttp_client_session.closed:  # close() has shut the websocket and its session
        await asyncio.sleep(0)
    for _ in range(3):  # a close() that does not wait would be done by now
        await asyncio.sleep(0)
    assert not closing.done() and seen == []
    release.set()
    await closing
    assert seen == ["answered e1"]
    assert _socket_mode_tasks() == []


async def test_a_refused_app_token_turns_slack_off_and_the_server_still_starts(
    core: Core, settings: Settings, fake_slack: FakeSlack
) -> None:
    """apps.connections.open refuses the token: slack_sdk retried that every 10 s for ever and the
    server never finished starting. Now Slack is off, /readyz says why, and the client is closed."""
    await seed(core)
    app = build_app(
        slack_settings(settings, fake_slack, slack_app_token="xapp-1-revoked", slack_signing_secret=None), core=core
    )
    server = TestServer(app, host="127.0.0.1", port=0)
    await asyncio.wait_for(server.start_server(), 30)  # a hang guard, not a timing
    try:
        assert app[SLACK].socket is not None and app[SLACK].socket.client.closed
        assert _socket_mode_tasks() == []
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/readyz")) as resp:
            ready = await resp.json()
        assert "refused the app token (invalid_auth)" in ready["components"]["slack"]
    finally:
        await server.close()
