"""Socket Mode: with SLACK_APP_TOKEN the bot dials out to Slack and answers envelopes there."""

from __future__ import annotations

from aiohttp.test_utils import TestServer

from bot.app import STATUS, build_app
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
