"""A connection's webhook channels are read once per burst, not once per delivery; a channel opened since
(by another replica) is still accepted, and one stopped here is refused at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from sync.contract.integration import ChannelDesk, WebhookAnswer, WebhookRequest
from sync.integrations.push import stop_push
from sync.integrations.push_channels import (
    StoredChannels,
    channel_cache,
    forget_channels,
    handle_webhook,
    refresh_channels,
)
from sync.runtime.core import Core
from sync.runtime.syncqueue import SyncQueue
from sync.store.model import Connection, WebhookSubscription


class SecretHooks:
    """A signed-webhook capability whose signature is the channel's secret itself."""

    max_body = 1024

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        channels = await desk.channels()
        if not channels:
            return WebhookAnswer(404, "unknown connection")
        channel = next((c for c in channels if c.secret == request.headers.get("x-sig")), None)
        if channel is None:
            return WebhookAnswer(401, "bad signature")
        if not await desk.first_delivery(request.body.decode()):
            return WebhookAnswer(401, "replayed delivery")
        await desk.sync(channel, "test")
        return WebhookAnswer(200, "ok")


async def _subscription(core: Core, connection_id: int, remote_id: str, secret: str) -> None:
    async with core.store.session() as s:
        s.add(WebhookSubscription(connection_id=connection_id, provider="square", remote_id=remote_id,
                                  resource_id="https://x/hook", secret=secret,
                                  expires_at=core.clock() + timedelta(days=7), status="active"))


async def _square_connection(core: Core) -> int:
    """A Square connection with one active subscription (sub-1, signed with secret-1): its id."""
    async with core.store.session() as s:
        conn = Connection(practice_id=1, provider="square", account="M1")
        s.add(conn)
        await s.flush()
        conn_id = conn.id
    await _subscription(core, conn_id, "sub-1", "secret-1")
    return conn_id


@dataclass
class Statements:
    n: int = 0


@contextmanager
def _statements(core: Core, *tables: str) -> Iterator[Statements]:
    """Counts the statements run while inside that name any of `tables`."""
    seen = Statements()

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.n += any(t in statement for t in tables)

    engine = core.store.engine.sync_engine
    event.listen(engine, "after_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "after_cursor_execute", count)


async def test_channels_are_read_once_and_a_new_one_is_still_accepted(core: Core) -> None:
    ran: list[int] = []

    async def runner(connection_id: int) -> None:
        ran.append(connection_id)

    core.services.sync_queue = SyncQueue(runner, settle=0.0)
    conn_id = await _square_connection(core)
    hooks = SecretHooks()
    with _statements(core, "webhook_subscription") as selects:
        answers = [await handle_webhook(core, hooks, "square", conn_id,
                                        WebhookRequest("POST", {"x-sig": "secret-1"}, {}, f"e{n}".encode()))
                   for n in range(20)]
        assert {a.status for a in answers} == {200}
        assert selects.n == 1  # one read for twenty deliveries

        # A subscription another replica opened: not in our cache, accepted after one more read.
        await _subscription(core, conn_id, "sub-2", "secret-2")
        new = await handle_webhook(core, hooks, "square", conn_id, WebhookRequest("POST", {"x-sig": "secret-2"}, {},
                                                                                   b"n1"))
        assert new.status == 200 and selects.n == 3
        # A forged one is checked against the table and refused; a replay is refused from memory alone.
        forged = await handle_webhook(core, hooks, "square", conn_id, WebhookRequest("POST", {"x-sig": "guess"}, {},
                                                                                      b"f1"))
        assert forged.status == 401
        before = selects.n
        replay = await handle_webhook(core, hooks, "square", conn_id, WebhookRequest("POST", {"x-sig": "secret-1"},
                                                                                      {}, b"e1"))
        assert replay.status == 401 and selects.n == before
    # Stopped here (sync off, disconnect): the push module empties the cache at once, so it is refused.
    await stop_push(core, conn_id)
    gone = await handle_webhook(core, hooks, "square", conn_id, WebhookRequest("POST", {"x-sig": "secret-1"}, {},
                                                                                b"late"))
    assert gone.status == 404
    await core.services.sync_queue.drain()
    assert ran and set(ran) == {conn_id}


async def test_a_burst_at_a_cold_cache_reads_the_channels_once(core: Core) -> None:
    """Thirty-two deliveries arriving together at a cold cache share one read (they each read before:
    the first acks of a burst waited ~60 ms behind each other's SELECTs, issue 14's p99); a read that
    began before the cache was emptied is answered to its waiters but not kept."""
    core.services.sync_queue = SyncQueue(None, settle=0.0)
    conn_id = await _square_connection(core)
    hooks = SecretHooks()
    with _statements(core, "webhook_subscription") as selects:
        answers = await asyncio.gather(*(
            handle_webhook(core, hooks, "square", conn_id,
                           WebhookRequest("POST", {"x-sig": "secret-1"}, {}, f"b{n}".encode()))
            for n in range(32)))
        assert [a.status for a in answers] == [200] * 32
        assert selects.n == 1
        cache = channel_cache(core)
        assert cache.get("square", conn_id) is not None and not cache.loads

        # Emptied while a read is in flight: the waiters get that read, the cache keeps nothing from it.
        forget_channels(core, [conn_id])
        desk = StoredChannels(core, "square", conn_id)
        reading = asyncio.ensure_future(desk.channels())
        await asyncio.sleep(0)  # the read has started
        forget_channels(core, [conn_id])
        assert [c.secret for c in await reading] == ["secret-1"]
        assert cache.get("square", conn_id) is None
    await core.services.sync_queue.close()


async def test_channels_and_replay_memory_are_read_ahead_after_a_change_here(core: Core) -> None:
    """A channel row this process changed is read again in the background with the connection's replay
    memory, so the first delivery after it reads nothing from the table; closing the core stops it."""
    core.services.sync_queue = SyncQueue(None, settle=0.0)
    conn_id = await _square_connection(core)
    refresh_channels(core, [conn_id])
    cache = channel_cache(core)
    await asyncio.gather(*cache.warming)
    assert [c.secret for c in cache.get("square", conn_id) or []] == ["secret-1"]
    with _statements(core, "webhook_subscription", "webhook_delivery") as reads:
        answer = await handle_webhook(core, SecretHooks(), "square", conn_id,
                                      WebhookRequest("POST", {"x-sig": "secret-1"}, {}, b"first"))
        assert answer.status == 200 and reads.n == 0
    refresh_channels(core, [conn_id])  # still reading when the core closes: stopped, nothing left open
    assert cache.warming
    await core.services.sync_queue.close()
