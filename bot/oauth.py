"""`/oauth/{provider}/callback`: finish a sign-in started from chat or the CLI.

The state is single-use, expires, and is bound to the chat user who started it (checked by the
provider's finish function). The browser gets a short page; the chat user gets a DM through the
notifier when one is configured.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from sync.contract import ProviderError
from sync.runtime.settings import Settings
from sync.runtime.core import Core

__all__ = ["page", "setup_oauth"]

log = logging.getLogger("clinicbot.oauth")


def page(title: str, text: str, status: int = 200) -> web.Response:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>clinicbot</title></head>"
        f"<body style='font-family:sans-serif;max-width:36em;margin:4em auto'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p></body></html>"
    )
    return web.Response(text=body, status=status, content_type="text/html")


async def _google(request: web.Request, core: Core) -> web.Response:
    from adapters.google.connect import finish_connect

    if "error" in request.query:
        return page("Google sign-in was not completed",
                    f"Google said: {request.query['error'][:100]}. Run `connect google` in chat to try again.", 400)
    state, code = request.query.get("state", ""), request.query.get("code", "")
    if not state or not code:
        return page("Incomplete sign-in", "This link is missing its state or code. Run `connect google` again.", 400)
    try:
        async with core.store.session() as session:
            connection = await finish_connect(session, core.settings, state=state, code=code, now=core.clock())
    except ProviderError as exc:
        return page("Google sign-in failed", str(exc), 400)
    log.info("google connected", extra={"connection": connection.id})
    return page("Google Calendar connected", "You can close this window; clinicbot will sync the calendar shortly.")


async def _graph(request: web.Request, core: Core) -> web.Response:
    from adapters.graph.connect import finish_connect

    if "error" in request.query:
        return page("Microsoft sign-in was not completed",
                    f"Microsoft said: {request.query['error'][:100]}. Run `connect outlook` in chat to try again.", 400)
    if not request.query.get("state") or not request.query.get("code"):
        return page("Incomplete sign-in", "This link is missing its state or code. Run `connect outlook` again.", 400)
    try:
        async with core.store.session() as session:
            connection = await finish_connect(session, core.settings, params=dict(request.query), now=core.clock())
    except ProviderError as exc:
        return page("Microsoft sign-in failed", str(exc), 400)
    log.info("graph connected", extra={"connection": connection.id})
    return page("Outlook calendar connected", "You can close this window; clinicbot will sync the calendar shortly.")


FINISHERS: dict[str, Callable[[web.Request, Core], Awaitable[web.Response]]] = {"google": _google, "graph": _graph}


def setup_oauth(app: web.Application, settings: Settings) -> str | None:
    from bot.app import CORE

    async def callback(request: web.Request) -> web.Response:
        finisher = FINISHERS.get(request.match_info["provider"])
        if finisher is None:
            return page("Unknown sign-in", "clinicbot does not know this provider.", 404)
        return await finisher(request, request.app[CORE])

    app.router.add_get("/oauth/{provider}/callback", callback)
    return None
