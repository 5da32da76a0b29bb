"""Stored push channels as a webhook handler sees them: the ChannelDesk of one connection.

The one webhook route hands each integration's signed-webhook capability a desk bound to the
connection in the URL: it finds only that connection's active channels of that integration, asks
for syncs through the SyncQueue (never inline), and records what the platform said about a channel
(renew it soon, or it was removed) for the renewal job.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract.integration import Channel
from sync.integrations.deliveries import first_delivery
from sync.runtime.core import Core
from sync.runtime.syncqueue import SyncQueue
from sync.store.model import Calendar, WebhookSubscription

__all__ = ["StoredChannels", "sync_queue"]


def sync_queue(core: Core) -> SyncQueue:
    """The core's sync queue (made on first use when no worker registered one)."""
    queue = core.services.sync_queue
    if queue is None:
        queue = core.services.sync_queue = SyncQueue(core.services.sync_runner)
    assert isinstance(queue, SyncQueue)
    return queue


class StoredChannels:
    """The ChannelDesk (sync.contract.integration) of one connection of one integration."""

    def __init__(self, core: Core, integration: str, connection_id: int) -> None:
        self.core = core
        self.integration = integration
        self.connection_id = connection_id

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
            calendar = await session.get(Calendar, row.calendar_id) if row.calendar_id else None
            return Channel(row.remote_id, row.resource_id or "", row.secret, row.expires_at,
                           calendar.remote_id if calendar else "")

    async def sync(self, channel: Channel, reason: str) -> None:
        sync_queue(self.core).request(self.connection_id, reason=f"{self.integration} {reason}")

    async def renew_soon(self, channel: Channel) -> None:
        """Set the channel's expiry to now, so the renewal job renews it at its next run."""
        async with self.core.store.session() as session:
            row = await self._stored(session, channel)
            if row is not None:
                row.expires_at = min(row.expires_at, self.core.clock())

    async def forget(self, channel: Channel) -> None:
        """Mark the channel removed, so the next ensure makes a new one."""
        async with self.core.store.session() as session:
            row = await self._stored(session, channel)
            if row is not None:
                row.status = "removed"

    async def channels(self) -> list[Channel]:
        """The connection's active channels that have a secret."""
        async with self.core.store.session() as session:
            rows = (await session.scalars(select(WebhookSubscription).where(
                WebhookSubscription.provider == self.integration,
                WebhookSubscription.connection_id == self.connection_id,
                WebhookSubscription.status == "active",
            ).order_by(WebhookSubscription.id))).all()
            return [Channel(r.remote_id, r.resource_id or "", r.secret, r.expires_at) for r in rows if r.secret]

    async def first_delivery(self, key: str) -> bool:
        """Record `key` for this connection; False when it is already there (see sync.integrations.deliveries)."""
        return await first_delivery(self.core, self.integration, self.connection_id, key)

    async def _stored(self, session: AsyncSession, channel: Channel) -> WebhookSubscription | None:
        return await session.scalar(
            select(WebhookSubscription).where(
                WebhookSubscription.provider == self.integration,
                WebhookSubscription.remote_id == channel.remote_id,
                WebhookSubscription.connection_id == self.connection_id,
            )
        )
