"""`/webhooks/{provider}/{connection_id}`: provider push notifications, answered fast.

Each provider's handler checks the notification (signature, client state, channel token) and
only *requests* a sync through the SyncQueue; nothing is synced inline and a rejected
notification changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from sync.runtime.settings import Settings
from sync.runtime.core import Core
from sync.runtime.syncqueue import SyncQueue

__all__ = ["setup_webhooks"]

log = logging.getLogger("clinicbot.webhooks")

Handler = Callable[[web.Request, Core, str], Awaitable[web.StreamResponse]]


def sync_queue(core: Core) -> SyncQueue:
    queue = core.services.sync_queue
    if queue is None:
        queue = core.services.sync_queue = SyncQueue(core.services.sync_runner)
    assert isinstance(queue, SyncQueue)
    return queue


async def _google(request: web.Request, core: Core, connection_id: str) -> web.StreamResponse:
    from adapters.google.push import handle_notification
    from sync.integrations.push_channels import find_google_channel

    async def find(conn_id: str, channel_id: str):  # type: ignore[no-untyped-def]
        return await find_google_channel(core, conn_id, channel_id)

    async def queue(conn_id: str, calendar_remote_id: str) -> None:
        sync_queue(core).request(int(conn_id), reason="google push")

    return await handle_notification(request, connection_id=connection_id, find_channel=find, queue_sync=queue,
                                     now=core.clock)


async def _graph(request: web.Request, core: Core, connection_id: str) -> web.StreamResponse:
    from adapters.graph.subscriptions import KnownSubscription, handle_notification
    from sync.integrations.push_channels import find_graph_subscription, note_graph_lifecycle

    async def lookup(subscription_id: str) -> KnownSubscription | None:
        return await find_graph_subscription(core, connection_id, subscription_id)

    async def queue(known: KnownSubscription, reason: str) -> None:
        if reason in ("reauthorizationRequired", "subscriptionRemoved"):
            await note_graph_lifecycle(core, known.remote_id, reason)
        sync_queue(core).request(int(known.connection_id), reason=f"graph {reason}")

    return await handle_notification(request, connection_id=connection_id, lookup=lookup, queue_sync=queue)


HANDLERS: dict[str, Handler] = {"google": _google, "graph": _graph}


def setup_webhooks(app: web.Application, settings: Settings) -> str | None:
    from bot.app import CORE

    async def dispatch(request: web.Request) -> web.StreamResponse:
        provider = request.match_info["provider"]
        connection_id = request.match_info["connection_id"]
        handler = HANDLERS.get(provider)
        if handler is None or not connection_id.isdigit():
            return web.json_response({"error": "unknown webhook"}, status=404)
        return await handler(request, request.app[CORE], connection_id)

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        yield
        queue = app[CORE].services.sync_queue
        if queue is not None:
            await queue.close()

    app.router.add_route("*", "/webhooks/{provider}/{connection_id}", dispatch)
    app.cleanup_ctx.append(lifecycle)
    return None
