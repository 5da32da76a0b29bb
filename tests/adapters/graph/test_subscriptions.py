"""Subscriptions with the validation handshake, notifications, lifecycle events and forged requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from adapters.graph import subscriptions
from adapters.graph.provider import GraphCalendar
from adapters.graph.subscriptions import (
    MAX_BODY,
    SubscriptionManager,
    SubscriptionRecord,
    handle_notification,
)
from bot.http.webhooks import answer_response, plain_request
from sync.contract import BadPayload
from sync.contract.integration import Channel
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox

CONNECTION = "7"


@dataclass
class Bot:
    """A stand-in for the clinicbot route: known subscriptions (by connection) and the sync queue."""

    url: str = ""
    known: dict[str, tuple[str, Channel]] = field(default_factory=dict)
    queued: list[tuple[str, str]] = field(default_factory=list)
    slow: bool = False

    def remember(self, record: SubscriptionRecord, connection: str = CONNECTION) -> None:
        channel = Channel(record.remote_id, record.resource, record.client_state, record.expires_at)
        self.known[record.remote_id] = (connection, channel)


@dataclass
class Desk:
    """The ChannelDesk the route hands the handler: one connection's view of the Bot."""

    bot: Bot
    connection_id: int

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def channel(self, channel_id: str) -> Channel | None:
        connection, channel = self.bot.known.get(channel_id, ("", None))
        return channel if connection == str(self.connection_id) else None

    async def sync(self, channel: Channel, reason: str) -> None:
        if self.bot.slow:
            await asyncio.sleep(10)
        self.bot.queued.append((channel.remote_id, reason))

    async def renew_soon(self, channel: Channel) -> None:
        pass

    async def forget(self, channel: Channel) -> None:
        pass


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    state = Bot()

    async def route(request: web.Request) -> web.Response:
        plain = await plain_request(request, MAX_BODY)
        if plain is None:
            return web.Response(status=413)
        return answer_response(await handle_notification(plain, Desk(state, int(request.match_info["connection_id"]))))

    app = web.Application()
    app.router.add_post("/webhooks/graph/{connection_id}", route)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/webhooks/graph/{CONNECTION}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
def manager(calendar: GraphCalendar) -> SubscriptionManager:
    return SubscriptionManager(calendar.client)


def event_body(subject: str = "Lunch") -> dict[str, Any]:
    return {
        "subject": subject,
        "start": {"dateTime": "2030-01-02T12:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-02T13:00:00", "timeZone": "UTC"},
    }


async def test_subscribe_runs_the_validation_handshake(manager: SubscriptionManager, bot: Bot, fake: GraphFake) -> None:
    record = await manager.subscribe("me/calendar", bot.url)
    sub = fake.subs.subscriptions[record.remote_id]
    assert sub.resource == "me/events" and sub.client_state == record.client_state
    assert len(record.client_state) >= 40
    assert timedelta(days=6) < record.expires_at - datetime.now(UTC) <= timedelta(minutes=10080)


async def test_subscribe_fails_when_the_endpoint_does_not_echo(manager: SubscriptionManager, fake: GraphFake) -> None:
    app = web.Application()
    app.router.add_post("/hook", lambda request: web.Response(text="nope"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with pytest.raises(BadPayload) as caught:
            await manager.subscribe("me/calendar", f"http://127.0.0.1:{port}/hook")
        assert "ValidationError" in str(caught.value)
        assert fake.subs.subscriptions == {}
    finally:
        await runner.cleanup()


async def test_change_notification_queues_one_delta_sync(
    manager: SubscriptionManager, bot: Bot, fake: GraphFake, mailbox: Mailbox
) -> None:
    record = await manager.subscribe("me/calendar", bot.url)
    bot.remember(record)
    fake.put_event(mailbox, event_body())
    await fake.subs.drain()
    assert bot.queued == [(record.remote_id, "created")]
    assert fake.subs.deliveries[-1] == (record.remote_id, "created", 202)


async def test_lifecycle_notifications_are_queued_with_their_event(
    manager: SubscriptionManager, bot: Bot, fake: GraphFake
) -> None:
    record = await manager.subscribe("me/calendar", bot.url)
    bot.remember(record)
    for event in ("reauthorizationRequired", "missed", "subscriptionRemoved"):
        assert await fake.subs.lifecycle(record.remote_id, event) == 202
    assert [reason for _, reason in bot.queued] == [
        "reauthorizationRequired",
        "missed",
        "subscriptionRemoved",
    ]


async def test_renewal_extends_or_resubscribes(manager: SubscriptionManager, bot: Bot, fake: GraphFake) -> None:
    record = await manager.subscribe("me/calendar", bot.url)
    fresh = await manager.ensure(record, "me/calendar", bot.url)
    assert fresh == record  # far from expiry: nothing to do
    due = SubscriptionRecord(
        record.remote_id, record.resource, record.client_state, datetime.now(UTC) + timedelta(hours=1)
    )
    renewed = await manager.ensure(due, "me/calendar", bot.url)
    assert renewed.remote_id == record.remote_id and renewed.expires_at > due.expires_at
    await fake.subs.lifecycle(record.remote_id, "subscriptionRemoved")  # Graph dropped it
    replaced = await manager.ensure(due, "me/calendar", bot.url)
    assert replaced.remote_id != record.remote_id and replaced.remote_id in fake.subs.subscriptions
    await manager.unsubscribe(replaced.remote_id)
    await manager.unsubscribe(replaced.remote_id)  # already gone is fine
    assert fake.subs.subscriptions == {}


def notification(sub_id: str, client_state: str | None, **extra: Any) -> dict[str, Any]:
    item = {
        "subscriptionId": sub_id,
        "changeType": "updated",
        "clientState": client_state,
        "resource": "Users/x/Events/y",
        "tenantId": "t",
        "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
    }
    return {"value": [{**item, **extra}]}


async def test_forged_unknown_and_garbage_notifications_are_rejected(bot: Bot) -> None:
    good = SubscriptionRecord("sub-1", "me/events", "s3cret-state-value", datetime.now(UTC) + timedelta(days=1))
    bot.remember(good)
    bot.remember(SubscriptionRecord("sub-other", "me/events", "other", good.expires_at), connection="8")
    async with httpx.AsyncClient() as http:
        cases = [
            (notification("sub-1", "wrong-state"), 403),
            (notification("sub-1", None), 403),
            (notification("sub-1", "s3cret-state-valuE"), 403),
            (notification("sub-unknown", "s3cret-state-value"), 404),
            (notification("sub-other", "other"), 404),  # another connection's subscription on this route
            (notification("sub-1", "s3cret-state-value", changeType="exploded"), 400),
            ({"value": []}, 400),
            ({"value": "nope"}, 400),
            ([1, 2], 400),
        ]
        for body, status in cases:
            r = await http.post(bot.url, json=body)
            assert r.status_code == status, (body, r.status_code)
        # One forged item spoils the whole delivery: nothing of it is synced.
        mixed = {"value": notification("sub-1", "s3cret-state-value")["value"] + notification("sub-1", "x")["value"]}
        assert (await http.post(bot.url, json=mixed)).status_code == 403
        assert (await http.post(bot.url, content=b"\xff\xfe not json")).status_code == 400
        assert (await http.post(bot.url, content=b"x" * (1024 * 1024 + 10))).status_code == 413
        assert bot.queued == []
        assert (await http.post(bot.url, json=notification("sub-1", "s3cret-state-value"))).status_code == 202
    assert bot.queued == [("sub-1", "updated")]


async def test_validation_echo_is_plain_text(bot: Bot) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(bot.url, params={"validationToken": "<script>alert(1)</script>"})
    assert r.status_code == 200 and r.text == "<script>alert(1)</script>"
    assert r.headers["Content-Type"].startswith("text/plain")


async def test_slow_queue_answers_503_so_graph_retries(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriptions, "QUEUE_BUDGET", 0.1)
    bot.remember(SubscriptionRecord("sub-1", "me/events", "state", datetime.now(UTC) + timedelta(days=1)))
    bot.slow = True
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(bot.url, json=notification("sub-1", "state"))
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert bot.queued == []
