"""`/webhooks/{integration}/{connection_id}[/{token}]`: every integration's push notifications, answered fast.

The route turns the request into plain data (method, headers, query, raw body; the body read only up
to the integration's limit) and hands it to the integration's signed-webhook capability with the
connection's ChannelDesk. The integration checks the notification (signature, client state, channel
token) and only *requests* a sync through the SyncQueue; nothing is synced inline and a rejected
notification changes nothing. The addresses Graph subscriptions and Google channels were opened
with (/webhooks/graph/N, /webhooks/google/N) are the same route.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace

from aiohttp import web

from bot.keys import CORE
from sync.contract import Refused
from sync.contract.integration import WebhookAnswer, WebhookRequest
from sync.integrations import registry
from sync.integrations.app_webhooks import APP_PATH, app_capability, handle_app_webhook
from sync.integrations.push_channels import handle_webhook
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.services import shift_sources

__all__ = ["answer_response", "plain_request", "setup_webhooks", "shift_push", "webhook"]

log = logging.getLogger("clinicbot.webhooks")

#: A connection id in the path: ASCII digits only (str.isdigit accepts "²" and "١"), and small
#: enough for the database's integer column.
CONNECTION_ID = re.compile(r"[1-9][0-9]{0,8}")
#: A path token as clinicbot makes them (URL-safe base64), bounded.
PATH_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
#: The largest delivery an app-wide destination reads (Nylas's are well under it).
APP_MAX_BODY = 512 * 1024


def _json(status: int, why: str) -> web.Response:
    return web.json_response({"error": why}, status=status)


async def plain_request(request: web.Request, max_body: int) -> WebhookRequest | None:
    """The request as plain data, or None when its body is larger than `max_body` (read no further)."""
    if request.content_length is not None and request.content_length > max_body:
        return None
    # The whole body, however many TCP segments it came in: `content.read(n)` returns only what is
    # buffered so far, which cut valid notifications short (Graph does not redeliver after a 4xx).
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > max_body:
            return None
        chunks.append(chunk)
    body = b"".join(chunks)
    headers = {name.lower(): value for name, value in request.headers.items()}
    return WebhookRequest(request.method, headers, dict(request.query), body)


def answer_response(answer: WebhookAnswer) -> web.Response:
    """The integration's plain answer as an aiohttp response."""
    return web.Response(status=answer.status, text=answer.text or None, content_type=answer.content_type,
                        headers=dict(answer.headers))


async def webhook(core: Core, request: web.Request, name: str, connection_id: str,
                  token: str | None = None) -> web.Response:
    """Serve one notification for `name` and the connection in the URL (and its path token, if any)."""
    try:
        integration = registry.get(name)
        hooks = integration.signed_webhooks
    except Refused:
        hooks = None
    if connection_id == APP_PATH and token is None and app_capability(name) is not None:
        plain = await plain_request(request, APP_MAX_BODY)
        if plain is None:
            return web.Response(status=413, text=json.dumps({"error": "body too large"}),
                                content_type="application/json")
        return answer_response(await handle_app_webhook(core, name, plain))
    if hooks is None or not CONNECTION_ID.fullmatch(connection_id):
        return _json(404, "unknown webhook")
    if token is not None and (not integration.path_token or not PATH_TOKEN.fullmatch(token)):
        return _json(404, "unknown webhook")
    plain = await plain_request(request, hooks.max_body)
    if plain is None:
        log.warning("webhook body too large", extra={"integration": name})
        return web.Response(status=413, text=json.dumps({"error": "body too large"}), content_type="application/json")
    if token is not None:
        plain = replace(plain, path_token=token)
    return answer_response(await handle_webhook(core, hooks, name, int(connection_id), plain))


async def shift_push(core: Core, request: web.Request, connection_id: str) -> web.Response:
    """A schedule pushed as signed JSON to the practice's shift source (sync.services.shift_sources)."""
    if not CONNECTION_ID.fullmatch(connection_id):
        return _json(404, "unknown webhook")
    plain = await plain_request(request, shift_sources.push_limit())
    if plain is None:
        return _json(413, "body too large: push a shorter window")
    return answer_response(await shift_sources.receive_push(core, int(connection_id), plain))


def setup_webhooks(app: web.Application, settings: Settings) -> str | None:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        return await webhook(request.app[CORE], request, request.match_info["provider"],
                             request.match_info["connection_id"], request.match_info.get("token"))

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        yield
        queue = app[CORE].services.sync_queue
        if queue is not None:
            await queue.close()

    async def shifts(request: web.Request) -> web.StreamResponse:
        return await shift_push(request.app[CORE], request, request.match_info["connection_id"])

    # Before the integrations' route: a schedule push is imported, not a request to sync.
    app.router.add_route("*", "/webhooks/shifts/{connection_id}", shifts)
    app.router.add_route("*", "/webhooks/{provider}/{connection_id}", dispatch)
    # Unsigned platforms' addresses end in the connection's secret path token.
    app.router.add_route("*", "/webhooks/{provider}/{connection_id}/{token}", dispatch)
    app.cleanup_ctx.append(lifecycle)
    return None
