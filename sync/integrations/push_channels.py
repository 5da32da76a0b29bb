"""Stored push channels as a webhook handler sees them: the ChannelDesk of one connection.

The one webhook route hands each integration's signed-webhook capability a desk bound to the
connection in the URL: it finds only that connection's active channels of that integration, asks
for syncs through the SyncQueue (never inline), and records what the platform said about a channel
(renew it soon, or it was removed) for the renewal job.

A connection's active channels are read once and then served from memory (`ChannelCache`) for up to
`CACHE_SECONDS`, and a miss is read once for all the deliveries waiting on it, so a burst of deliveries
costs at most one database read to verify: whatever changes a
channel row here (open, renew, stop, a lifecycle event) empties the connection's entry at once, and
a signature that fails against a cached list is checked again against the table before it is
refused (`handle_webhook`), so a channel opened by another replica is never refused for being new.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import Unavailable
from sync.contract.integration import Channel, SignedWebhooks, WebhookAnswer, WebhookRequest
from sync.contract.leads import LeadInput, LeadOutcome
from sync.integrations.deliveries import delivery_memory, first_delivery
from sync.runtime.core import Core
from sync.runtime.syncqueue import SyncQueue
from sync.store.model import Calendar, WebhookSubscription

__all__ = ["CACHE_SECONDS", "ChannelCache", "StoredChannels", "channel_cache", "forget_channels", "handle_webhook",
           "refresh_channels", "sync_queue", "warm_channels"]

log = logging.getLogger("clinicbot.webhooks")

#: How long a connection's channel list is served from memory without looking at the table again
#: (a bound for changes made by another replica; this process's own changes empty it at once).
CACHE_SECONDS = 30.0


def sync_queue(core: Core) -> SyncQueue:
    """The core's sync queue (made on first use when no worker registered one)."""
    queue = core.services.sync_queue
    if queue is None:
        queue = core.services.sync_queue = SyncQueue(core.services.sync_runner)
    assert isinstance(queue, SyncQueue)
    return queue


@dataclass
class ChannelCache:
    """Each connection's active channels with their secrets, as last read, and when.

    A miss is read once however many deliveries wait for it (`load`): a burst arriving at a cold
    cache used to send one SELECT per delivery, and the first 32 acks of a burst waited ~60 ms
    behind each other's reads (issue 14's p99). A read that started before `forget` is handed to
    those already waiting for it but is not cached.
    """

    entries: dict[tuple[str, int], tuple[float, list[Channel]]] = field(default_factory=dict)
    monotonic: Callable[[], float] = time.monotonic
    loads: dict[tuple[str, int], asyncio.Task[list[Channel]]] = field(default_factory=dict)
    generations: dict[int, int] = field(default_factory=dict)
    #: Background reads that fill the cache ahead of the deliveries (`warm_channels`).
    warming: set[asyncio.Task[None]] = field(default_factory=set)

    def get(self, integration: str, connection_id: int) -> list[Channel] | None:
        hit = self.entries.get((integration, connection_id))
        if hit is None or self.monotonic() - hit[0] > CACHE_SECONDS:
            return None
        return hit[1]

    def put(self, integration: str, connection_id: int, channels: list[Channel]) -> None:
        self.entries[(integration, connection_id)] = (self.monotonic(), channels)

    def forget(self, connection_id: int) -> None:
        self.generations[connection_id] = self.generations.get(connection_id, 0) + 1
        for slot in [s for s in self.entries if s[1] == connection_id]:
            del self.entries[slot]
        for slot in [s for s in self.loads if s[1] == connection_id]:
            del self.loads[slot]  # the next miss reads again; those waiting get this read's answer

    async def load(self, integration: str, connection_id: int,
                   read: Callable[[], Coroutine[Any, Any, list[Channel]]]) -> list[Channel]:
        """The channels from `read`, one read at a time per connection; a non-empty answer is cached."""
        slot = (integration, connection_id)
        task = self.loads.get(slot)
        if task is None:
            generation = self.generations.get(connection_id, 0)
            task = self.loads[slot] = asyncio.get_running_loop().create_task(read())

            def done(finished: asyncio.Task[list[Channel]]) -> None:
                if self.loads.get(slot) is finished:
                    del self.loads[slot]
                if finished.cancelled() or finished.exception() is not None:
                    return  # (retrieved here; each waiting caller raises it as its own)
                found = finished.result()
                # An unknown connection is not cached: it is answered 404 from the table each time.
                if found and self.generations.get(connection_id, 0) == generation:
                    self.put(integration, connection_id, found)

            task.add_done_callback(done)
        # Shielded: a caller that goes away (a dropped request) does not cancel the others' read.
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Stop warming, and wait out the reads in flight (a closing core's last deliveries)."""
        for task in self.warming:
            task.cancel()
        pending = [*self.warming, *self.loads.values()]
        self.warming.clear()
        self.loads.clear()
        await asyncio.gather(*pending, return_exceptions=True)


def channel_cache(core: Core) -> ChannelCache:
    """The core's channel cache, made on first use."""
    cache = core.services.webhook_channels
    if cache is None:
        cache = core.services.webhook_channels = ChannelCache()
    assert isinstance(cache, ChannelCache)
    return cache


def forget_channels(core: Core, connection_ids: Iterable[int]) -> None:
    """A channel row of these connections changed: read them from the table on the next delivery."""
    cache = channel_cache(core)
    for connection_id in connection_ids:
        cache.forget(connection_id)


def refresh_channels(core: Core, connection_ids: Iterable[int]) -> None:
    """This process changed these connections' channel rows: empty their entries and read them again
    in the background, with their replay memory, so the first deliveries after a subscription is made
    or renewed do not wait for those reads (under load they were the p99 of a burst, issue 14)."""
    ids = list(connection_ids)
    forget_channels(core, ids)
    warm_channels(core, ids)


def warm_channels(core: Core, connection_ids: Iterable[int] | None = None) -> None:
    """Start reading the active channels and the replay memory of these connections (None: all of
    them, as a server starts) into memory; nothing when no loop runs. Failures are only logged: a
    delivery reads what it needs itself."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    cache = channel_cache(core)
    task = loop.create_task(_warm(core, None if connection_ids is None else list(connection_ids)),
                            name="webhook-channels-warm")
    cache.warming.add(task)

    def done(finished: asyncio.Task[None]) -> None:
        cache.warming.discard(finished)
        if not finished.cancelled() and finished.exception() is not None:
            log.warning("webhook channels not read ahead; deliveries read them",
                        extra={"error": type(finished.exception()).__name__})

    task.add_done_callback(done)


async def _warm(core: Core, connection_ids: list[int] | None) -> None:
    query = select(WebhookSubscription.provider, WebhookSubscription.connection_id).where(
        WebhookSubscription.status == "active", WebhookSubscription.secret.is_not(None)).distinct()
    if connection_ids is not None:
        if not connection_ids:
            return
        query = query.where(WebhookSubscription.connection_id.in_(connection_ids))
    async with core.store.session() as session:
        pairs = (await session.execute(query)).tuples().all()
    for integration, connection_id in sorted(pairs):
        if await StoredChannels(core, integration, connection_id).channels():
            await delivery_memory(core).preload(integration, connection_id)


async def handle_webhook(core: Core, hooks: SignedWebhooks, integration: str, connection_id: int,
                         request: WebhookRequest) -> WebhookAnswer:
    """One delivery through the integration, verified against the cached channels, or the table's on doubt."""
    desk = StoredChannels(core, integration, connection_id)
    answer = await hooks.handle(request, desk)
    if answer.status == 401 and desk.served_cached and not desk.checked_delivery:
        # The signature matched no cached channel: maybe one made since (by another replica). The
        # table decides; a forged delivery costs the one read it cost before the cache.
        forget_channels(core, [connection_id])
        desk = StoredChannels(core, integration, connection_id)
        answer = await hooks.handle(request, desk)
    if answer.status == 410:
        # Calendly deletes a subscription answered 410 (others stop too): never say it for a connection
        # we serve; a delivery we cannot take is refused as not found, which the platform retries.
        log.warning("an integration answered 410 to a delivery; answered 404 instead",
                    extra={"integration": integration, "connection": connection_id})
        answer = WebhookAnswer(404, "not found")
    if answer.status >= 400 and desk.known and not (answer.status == 401 and desk.checked_delivery):
        # Refused (bad signature, stale, bad body) for a connection that exists: webhook health counts
        # it. A replay is not a failure, and an unknown connection has no row to count against.
        delivery_memory(core).note_rejected(integration, connection_id, answer.status)
    return answer


class StoredChannels:
    """The ChannelDesk (sync.contract.integration) of one connection of one integration."""

    def __init__(self, core: Core, integration: str, connection_id: int) -> None:
        self.core = core
        self.integration = integration
        self.connection_id = connection_id
        #: Whether channels() answered from the cache, and whether a delivery key was checked (the
        #: signature had passed): handle_webhook's "look at the table again" needs both.
        self.served_cached = False
        self.checked_delivery = False
        #: Whether the connection had channels (it exists and takes deliveries).
        self.known = False

    def now(self) -> datetime:
        return self.core.clock()

    async def channel(self, channel_id: str) -> Channel | None:
        """The connection's active channel `channel_id`; None for any other, or one without a secret."""
        async with self.core.store.session() as session:
            row = await session.scalar(
                select(WebhookSubscription).where(
                    WebhookSubscription.provider == self.integration,
                    WebhookSubscription.remote_id == channel_id,
                    WebhookSubscription.connection_id == self.connection_id,
                    WebhookSubscription.status == "active",
                )
            )
            if row is None or not row.secret:
                return None
            self.known = True
            calendar = await session.get(Calendar, row.calendar_id) if row.calendar_id else None
            return Channel(row.remote_id, row.resource_id or "", row.secret, row.expires_at,
                           calendar.remote_id if calendar else "")

    async def sync(self, channel: Channel, reason: str) -> None:
        sync_queue(self.core).request(self.connection_id, reason=f"{self.integration} {reason}")

    async def sync_items(self, channel: Channel, external_ids: Sequence[str], reason: str) -> None:
        sync_queue(self.core).request(self.connection_id, reason=f"{self.integration} {reason}",
                                      items=external_ids)

    async def renew_soon(self, channel: Channel) -> None:
        """Set the channel's expiry to now, so the renewal job renews it at its next run."""
        async with self.core.store.session() as session:
            row = await self._stored(session, channel)
            if row is not None:
                row.expires_at = min(row.expires_at, self.core.clock())
        forget_channels(self.core, [self.connection_id])

    async def forget(self, channel: Channel) -> None:
        """Mark the channel removed, so the next ensure makes a new one."""
        async with self.core.store.session() as session:
            row = await self._stored(session, channel)
            if row is not None:
                row.status = "removed"
        forget_channels(self.core, [self.connection_id])

    async def channels(self) -> list[Channel]:
        """The connection's active channels that have a secret (from the cache while it is fresh)."""
        cache = channel_cache(self.core)
        cached = cache.get(self.integration, self.connection_id)
        if cached is not None:
            self.served_cached = self.known = True
            return cached
        found = await cache.load(self.integration, self.connection_id, self._read_channels)
        self.known = bool(found)
        return found

    async def _read_channels(self) -> list[Channel]:
        async with self.core.store.session() as session:
            rows = (await session.scalars(select(WebhookSubscription).where(
                WebhookSubscription.provider == self.integration,
                WebhookSubscription.connection_id == self.connection_id,
                WebhookSubscription.status == "active",
            ).order_by(WebhookSubscription.id))).all()
            return [Channel(r.remote_id, r.resource_id or "", r.secret, r.expires_at) for r in rows if r.secret]

    async def first_delivery(self, key: str) -> bool:
        """Record `key` for this connection; False when it is already there (see sync.integrations.deliveries)."""
        self.checked_delivery = True
        return await first_delivery(self.core, self.integration, self.connection_id, key)

    async def intake_lead(self, lead: LeadInput) -> LeadOutcome:
        """Hand a verified submission to the lead intake the Core registered (sync.notify.leads)."""
        intake = self.core.services.lead_intake
        if intake is None:
            raise Unavailable("this server takes no leads: its lead intake is not running", provider=self.integration)
        return await intake(self.connection_id, self.integration, lead)

    async def _stored(self, session: AsyncSession, channel: Channel) -> WebhookSubscription | None:
        return await session.scalar(
            select(WebhookSubscription).where(
                WebhookSubscription.provider == self.integration,
                WebhookSubscription.remote_id == channel.remote_id,
                WebhookSubscription.connection_id == self.connection_id,
            )
        )
