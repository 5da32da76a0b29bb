"""`/sms/{integration}/inbound` and `/status`: clients' replies to the practice's texting number (STOP,
START), and the platform's delivery reports.

The route only turns the request into plain data and names the address it was called at (the server's
public URL and the path and query as sent: what the platform signed); sync.notify.sms_replies checks
the signature through the integration and records the opt-out.
"""

from __future__ import annotations

from aiohttp import web

from bot.http.webhooks import answer_response, plain_request
from bot.keys import CORE
from sync.notify.sms_replies import handle_inbound, handle_status, inbound_limit
from sync.runtime.settings import Settings

__all__ = ["setup_sms"]


async def _inbound(request: web.Request) -> web.Response:
    name = request.match_info["provider"]
    limit = inbound_limit(name)
    if limit is None:
        return web.json_response({"error": "unknown webhook"}, status=404)
    plain = await plain_request(request, limit)
    if plain is None:
        return web.json_response({"error": "body too large"}, status=413)
    core = request.app[CORE]
    url = core.settings.base_url() + request.raw_path
    handler = handle_status if request.match_info["what"] == "status" else handle_inbound
    return answer_response(await handler(core, name, plain, url))


def setup_sms(app: web.Application, settings: Settings) -> str | None:
    app.router.add_route("POST", r"/sms/{provider}/{what:inbound|status}", _inbound)
    return None
