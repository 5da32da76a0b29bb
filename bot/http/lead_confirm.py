"""`/leads/confirm?t=...`: a prospective client confirms the slot the practice proposed by email.

GET shows the proposal (practice, practitioner, time in the practice's zone) with a Confirm button;
POST (the button) books it. The link is signed and names the proposal it was made for, so it works
once, for that proposal only, for three days; a slot taken meanwhile books nothing and says so.
"""

from __future__ import annotations

import html
import logging

from aiohttp import web

from bot.keys import CORE
from sync.runtime.settings import Settings
from sync.services.appointment_views import moment_label
from sync.services.errors import Conflict
from sync.services.leads import Proposal, confirm_by_token, proposal_by_token

__all__ = ["setup_lead_confirm"]

log = logging.getLogger("clinicbot.leads")

_PAGE = ("<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
         "<title>{title}</title><body style='font-family:sans-serif;max-width:32em;margin:3em auto'>{body}</body>")
_GONE = ("<p>This link is no longer valid: the time was confirmed already, another time was proposed, or the link "
         "is older than three days. Reply to the practice's email and they will help.</p>")


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(text=_PAGE.format(title=html.escape(title), body=body), status=status,
                        content_type="text/html", headers={"X-Content-Type-Options": "nosniff",
                                                           "Cache-Control": "no-store",
                                                           "Referrer-Policy": "no-referrer"})


def _what(p: Proposal) -> str:
    service = f"{html.escape(p.service)} " if p.service else ""
    return (f"your {service}visit with {html.escape(p.practitioner)} at {html.escape(p.practice)} on "
            f"<b>{html.escape(moment_label(p.start, p.timezone))}</b> ({html.escape(p.timezone)})")


async def _confirm(request: web.Request) -> web.Response:
    token = request.query.get("t", "")
    core = request.app[CORE]
    if len(token) > 300:
        return _page("Link not valid", _GONE, 400)
    if request.method == "GET":
        proposal = await proposal_by_token(core, token)
        if proposal is None:
            return _page("Link not valid", _GONE, 404)
        return _page("Confirm your visit", (
            f"<p>Confirm {_what(proposal)}?</p>"
            f"<form method=post action='?t={html.escape(token, quote=True)}'><button>Confirm</button></form>"))
    try:
        booked = await confirm_by_token(core, token)
    except Conflict:
        log.info("a proposed slot was taken before the client confirmed")
        return _page("Time no longer free", "<p>Sorry: that time was taken meanwhile, so nothing was booked. "
                                            "The practice will propose another.</p>", 409)
    if booked is None:
        return _page("Link not valid", _GONE, 404)
    return _page("Booked", f"<p>Thank you: {_what(booked)} is booked.</p>")


def setup_lead_confirm(app: web.Application, settings: Settings) -> str | None:
    app.router.add_route("GET", "/leads/confirm", _confirm)
    app.router.add_route("POST", "/leads/confirm", _confirm)
    return None
