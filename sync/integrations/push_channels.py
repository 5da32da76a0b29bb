"""Stored push channels (Graph subscriptions, Google watch channels) looked up for webhooks."""

from __future__ import annotations

from sqlalchemy import select

from adapters.google.push import WatchChannel
from adapters.graph.subscriptions import KnownSubscription
from sync.runtime.core import Core
from sync.store.model import Calendar, WebhookSubscription

__all__ = ["find_google_channel", "find_graph_subscription", "note_graph_lifecycle"]


async def find_google_channel(core: Core, connection_id: str, channel_id: str) -> WatchChannel | None:
    """The active Google watch channel `channel_id` of a connection, or None."""
    if not (connection_id.isascii() and connection_id.isdigit()) or len(connection_id) > 9:
        return None
    async with core.store.session() as session:
        row = await session.scalar(
            select(WebhookSubscription).where(
                WebhookSubscription.provider == "google",
                WebhookSubscription.remote_id == channel_id,
                WebhookSubscription.connection_id == int(connection_id),
                WebhookSubscription.status == "active",
            )
        )
        if row is None:
            return None
        calendar = await session.get(Calendar, row.calendar_id) if row.calendar_id else None
        return WatchChannel(
            channel_id=row.remote_id,
            resource_id=row.resource_id or "",
            token=row.secret or "",
            calendar_remote_id=calendar.remote_id if calendar else "",
            expires_at=row.expires_at,
        )


async def find_graph_subscription(core: Core, connection_id: str, subscription_id: str) -> KnownSubscription | None:
    """The active Graph subscription `subscription_id` of a connection, or None."""
    if not (connection_id.isascii() and connection_id.isdigit()) or len(connection_id) > 9:
        return None
    async with core.store.session() as session:
        row = await session.scalar(
            select(WebhookSubscription).where(
                WebhookSubscription.provider == "graph",
                WebhookSubscription.remote_id == subscription_id,
                WebhookSubscription.connection_id == int(connection_id),
                WebhookSubscription.status == "active",
            )
        )
        if row is None or not row.secret:
            return None
        return KnownSubscription(row.remote_id, str(row.connection_id), row.secret, row.calendar_id)


async def note_graph_lifecycle(core: Core, subscription_id: str, event: str) -> None:
    """Record a Graph lifecycle event so the renewal job acts on it at its next run.

    reauthorizationRequired: renew now (expiry set to now); subscriptionRemoved: subscribe again.
    """
    async with core.store.session() as session:
        row = await session.scalar(
            select(WebhookSubscription).where(
                WebhookSubscription.provider == "graph", WebhookSubscription.remote_id == subscription_id
            )
        )
        if row is None:
            return
        if event == "reauthorizationRequired":
            row.expires_at = min(row.expires_at, core.clock())
        elif event == "subscriptionRemoved":
            row.status = "removed"
