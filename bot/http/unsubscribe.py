"""`/unsubscribe?t=...`: a client's one-click opt-out from messages about their visits.

The link in every client email names the practice and a keyed hash of the address, signed; GET shows
a confirmation page with a button, and POST (the button, or a mail client's List-Unsubscribe-Post
one-click) records the opt-out. A link that is not clinicbot's changes nothing.
"""

from __future__ import annotations

import html

from aiohttp import web

from bot.keys import CORE
from sync.notify.clients import opt_out_by_token
from sync.runtime.settings import Settings

__all__ = ["setup_unsubscribe"]

_PAGE = ("<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
         "<title>{title}</title><body style='font-family:sans-serif;max-width:32em;margin:3em auto'>{body}</body>")


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(text=_PAGE.format(title=html.escape(title), body=body), status=status,
                        content_type="text/html", headers={"X-Content-Type-Options": "nosniff",
                                                           "Cache-Control": "no-store"})


async def _unsubscribe(request: web.Request) -> web.Response:
    token = request.query.get("t", "")
    if request.method == "GET":
        if not token or len(token) > 300:
            return _page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 400)
        return _page("Stop messages", (
            "<p>Stop all messages about your visits from this practice?</p>"
            f"<form method=post action='?t={html.escape(token, quote=True)}'><button>Stop messages</button></form>"))
    practice = await opt_out_by_token(request.app[CORE], token)
    if practice is None:
        return _page("Link not valid", "<p>This unsubscribe link is not valid; nothing was changed.</p>", 400)
    return _page("Done", f"<p>You will get no more messages about your visits from {html.escape(practice)}.</p>")


def setup_unsubscribe(app: web.Application, settings: Settings) -> str | None:
    app.router.add_route("GET", "/unsubscribe", _unsubscribe)
    app.router.add_route("POST", "/unsubscribe", _unsubscribe)
    return None
