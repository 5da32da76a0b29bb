"""A running clinicbot server (random loopback port) with Slack pointed at the fake Web API,
and a client that posts Slack-signed requests to it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import build_app
from bot.slack.server import SLACK, SlackRuntime
from bot.slack.verify import sign
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from tests.bot.clinic import Clinic, seed
from tests.fakes.slack import BOT_TOKEN, FakeSlack

SECRET = "test-signing-secret"


def signed_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """The headers Slack sends with `body`: form content type, a fresh timestamp, the v0 signature."""
    stamp = str(int(time.time()))
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign(secret, stamp, body),
    }


def submission_payload(meta: str, day: str, hhmm: str, practitioner: int) -> dict[str, Any]:
    """A reschedule modal submitted with this date, time and practitioner (`meta`: its private_metadata)."""
    return {
        "type": "view_submission",
        "team": {"id": "T1", "domain": "clinic"},
        "user": {"id": "US", "username": "us", "team_id": "T1"},
        "api_app_id": "A1",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": "clinic.reschedule",
            "private_metadata": meta,
            "state": {
                "values": {
                    "date": {"value": {"type": "datepicker", "selected_date": day}},
                    "time": {"value": {"type": "timepicker", "selected_time": hhmm}},
                    "practitioner": {
                        "value": {"type": "static_select", "selected_option": {"value": str(practitioner)}}
                    },
                }
            },
        },
    }


@dataclass
class SlackClient:
    """Posts what Slack would post, signed (or deliberately not)."""

    url: str
    session: aiohttp.ClientSession
    fake: FakeSlack
    runtime: SlackRuntime
    core: Core
    clinic: Clinic
    team: str = "T1"
    n: int = field(default=0)

    def __post_init__(self) -> None:
        # Tests read a modal submit's answer in its ack: on a loaded machine a submit took longer than
        # the 2 s budget and was acked "still working" instead (a flaky test). The over-budget path
        # has its own test, which sets a budget of 0.
        self.runtime.listeners.submit_budget = None

    async def post(
        self,
        body: bytes,
        *,
        secret: str = SECRET,
        ts: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
        sign_it: bool = True,
    ) -> aiohttp.ClientResponse:
        stamp = str(int(time.time()) if ts is None else ts)
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        if sign_it:
            h["X-Slack-Request-Timestamp"] = stamp
            h["X-Slack-Signature"] = signature or sign(secret, stamp, body)
        h.update(headers or {})
        async with self.session.post(self.url + "/slack/events", data=body, headers=h) as resp:
            await resp.read()
            return resp

    def command_body(self, text: str, user: str = "US", rid: str | None = None) -> bytes:
        self.n += 1
        rid = rid or f"cmd{self.n}"
        return urlencode(
            {
                "token": "legacy-unused",
                "team_id": self.team,
                "team_domain": "clinic",
                "channel_id": "C1",
                "channel_name": "front-desk",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/clinic",
                "text": text,
                "api_app_id": "A1",
                "response_url": self.fake.response_url(rid),
                "trigger_id": self.fake.new_trigger(),
            }
        ).encode()

    async def command(self, text: str, user: str = "US", rid: str | None = None) -> aiohttp.ClientResponse:
        return await self.post(self.command_body(text, user, rid))

    def action_payload(
        self,
        action_id: str,
        value: str,
        user: str = "US",
        rid: str = "msg",
        ephemeral: bool = True,
        message_ts: str = "1.000001",
    ) -> dict[str, Any]:
        return {
            "type": "block_actions",
            "team": {"id": self.team, "domain": "clinic"},
            "user": {"id": user, "username": user.lower(), "team_id": self.team},
            "api_app_id": "A1",
            "trigger_id": self.fake.new_trigger(),
            "response_url": self.fake.response_url(rid),
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": "C1",
                "is_ephemeral": ephemeral,
            },
            "channel": {"id": "C1", "name": "front-desk"},
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b1",
                    "value": value,
                    "action_ts": str(time.time()),
                }
            ],
        }

    async def interact(self, payload: dict[str, Any], **kw: Any) -> aiohttp.ClientResponse:
        return await self.post(urlencode({"payload": json.dumps(payload)}).encode(), **kw)

    async def interact_json(self, payload: dict[str, Any]) -> tuple[int, Any]:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        async with self.session.post(self.url + "/slack/events", data=body, headers=signed_headers(body)) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text.startswith("{") else text)

    async def settle(self) -> None:
        """Wait for the work done after the acks."""
        await self.runtime.drain()


def slack_settings(base: Settings, fake: FakeSlack, **extra: Any) -> Settings:
    values = {
        "slack_signing_secret": SECRET,
        "slack_bot_token": BOT_TOKEN,
        "slack_api_url": fake.url + "/api",
    }
    values.update(extra)
    return base.model_copy(update=values)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()


@asynccontextmanager
async def serve_slack(core: Core, settings: Settings, fake: FakeSlack, **extra: Any) -> AsyncIterator[SlackClient]:
    """A seeded clinic's server with Slack on a random loopback port; `extra` overrides settings."""
    clinic = await seed(core)
    app = build_app(slack_settings(settings, fake, **extra), core=core)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield SlackClient(str(server.make_url("")).rstrip("/"), session, fake, app[SLACK], core, clinic)
    finally:
        await server.close()


@pytest.fixture
async def slack(core: Core, settings: Settings, fake_slack: FakeSlack) -> AsyncIterator[SlackClient]:
    async with serve_slack(core, settings, fake_slack) as client:
        yield client
