"""Watch channels end to end: the fake POSTs notifications to a real aiohttp route that calls
handle_notification; forged notifications are rejected and queue nothing."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiohttp import web

from adapters.google.provider import GoogleCalendar
from adapters.google.push import (
    WatchChannel,
    handle_notification,
    needs_renewal,
    open_channel,
    renew_channel,
    stop_channel,
    webhook_address,
)
from bot.http.webhooks import answer_response, plain_request
from sync.contract.integration import Channel
from tests.adapters.google.conftest import PRIMARY
from tests.adapters.google.fakes.google import GoogleFake


@dataclass
class Receiver:
    """The clinicbot side: stored channels and the syncs that notifications queued."""

    url: str = ""
    channels: dict[str, WatchChannel] = field(default_factory=dict)
    queued: list[tuple[str, str]] = field(default_factory=list)



@dataclass
class Desk:
    """The ChannelDesk the route hands the handler: one connection's view of the Receiver."""

    rec: Receiver
    connection_id: int

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def channel(self, channel_id: str) -> Channel | None:
        found = self.rec.channels.get(channel_id) if self.connection_id == 7 else None
        if found is None:
            return None
        return Channel(found.channel_id, found.resource_id, found.token, found.expires_at, found.calendar_remote_id)

    async def sync(self, channel: Channel, reason: str) -> None:
        self.rec.queued.append((str(self.connection_id), channel.calendar_remote_id))

    async def renew_soon(self, channel: Channel) -> None:
        pass

    async def forget(self, channel: Channel) -> None:
        pass


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def route(request: web.Request) -> web.Response:
        plain = await plain_request(request, 64 * 1024)
        assert plain is not None
        return answer_response(await handle_notification(plain, Desk(rec, int(request.match_info["connection_id"]))))

    app = web.Application()
    app.router.add_post("/webhooks/google/{connection_id}", route)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    rec.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield rec
    finally:
        await runner.cleanup()


async def watched(fake: GoogleFake, calendar: GoogleCalendar, receiver: Receiver) -> WatchChannel:
    channel = await open_channel(calendar, webhook_address(receiver.url, 7))
    receiver.channels[channel.channel_id] = channel
    return channel


async def test_a_change_queues_one_incremental_sync(
    fake: GoogleFake, calendar: GoogleCalendar, receiver: Receiver
) -> None:
    channel = await watched(fake, calendar, receiver)
    await fake.drain()
    assert [(d.state, d.status) for d in fake.deliveries] == [("sync", 200)]
    assert receiver.queued == []  # the "sync" message only confirms the channel
    fake.server_insert(
        PRIMARY,
        {
            "summary": "new",
            "start": {"dateTime": "2030-01-01T10:00:00Z"},
            "end": {"dateTime": "2030-01-01T11:00:00Z"},
        },
    )
    await fake.drain()
    assert receiver.queued == [("7", PRIMARY)]
    assert fake.deliveries[-1].message_number == 2
    assert channel.expires_at > datetime.now(UTC) + timedelta(days=6)


async def test_forged_notifications_are_rejected(
    fake: GoogleFake, calendar: GoogleCalendar, receiver: Receiver
) -> None:
    channel = await watched(fake, calendar, receiver)
    await fake.drain()
    good = {
        "X-Goog-Channel-ID": channel.channel_id,
        "X-Goog-Channel-Token": channel.token,
        "X-Goog-Resource-ID": channel.resource_id,
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": "9",
    }
    url = webhook_address(receiver.url, 7)
    async with httpx.AsyncClient() as client:
        cases = {
            "wrong token": ({**good, "X-Goog-Channel-Token": "guess"}, url, 403),
            "no token": ({k: v for k, v in good.items() if k != "X-Goog-Channel-Token"}, url, 403),
            "unknown channel": ({**good, "X-Goog-Channel-ID": "f0f0"}, url, 404),
            "other connection": (good, webhook_address(receiver.url, 8), 404),
            "wrong resource": ({**good, "X-Goog-Resource-ID": "other"}, url, 403),
            "garbage state": ({**good, "X-Goog-Resource-State": "boom"}, url, 400),
            "no headers": ({}, url, 400),
        }
        for name, (headers, target, status) in cases.items():
            response = await client.post(target, headers=headers, content=b"{}")
            assert response.status_code == status, name
        assert receiver.queued == []
        assert (await client.post(url, headers=good)).status_code == 200
    assert receiver.queued == [("7", PRIMARY)]


async def test_expired_channels_are_refused(fake: GoogleFake, calendar: GoogleCalendar, receiver: Receiver) -> None:
    channel = await watched(fake, calendar, receiver)
    receiver.channels[channel.channel_id] = replace(channel, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    headers = {
        "X-Goog-Channel-ID": channel.channel_id,
        "X-Goog-Channel-Token": channel.token,
        "X-Goog-Resource-ID": channel.resource_id,
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": "3",
    }
    async with httpx.AsyncClient() as client:
        assert (await client.post(webhook_address(receiver.url, 7), headers=headers)).status_code == 404
    assert receiver.queued == []


async def test_renewal_replaces_the_channel_and_stop_silences_it(
    fake: GoogleFake, calendar: GoogleCalendar, receiver: Receiver
) -> None:
    old = await watched(fake, calendar, receiver)
    assert not needs_renewal(old, datetime.now(UTC))
    assert needs_renewal(old, old.expires_at - timedelta(hours=1))
    new = await renew_channel(calendar, old, webhook_address(receiver.url, 7))
    receiver.channels[new.channel_id] = new
    assert new.channel_id != old.channel_id and new.token != old.token
    assert fake.channels[old.channel_id].stopped and not fake.channels[new.channel_id].stopped
    await stop_channel(calendar, new)
    await stop_channel(calendar, new)  # stopping twice is harmless
    await fake.drain()
    before = len(fake.deliveries)
    fake.server_insert(
        PRIMARY,
        {
            "summary": "quiet",
            "start": {"dateTime": "2030-01-01T10:00:00Z"},
            "end": {"dateTime": "2030-01-01T11:00:00Z"},
        },
    )
    await fake.drain()
    assert len(fake.deliveries) == before and receiver.queued == []
