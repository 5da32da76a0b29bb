"""`/oauth/{integration}/callback`: finish a sign-in started from chat or the CLI, for every integration.

The state is single-use, expires, and is bound to the person who started it; the core checks it,
the integration redeems the code as plain data, and the core writes the Connection with the
calendars found, once (sync.integrations.connect). The browser gets a short page saying what was
found and what to do next.
"""

from __future__ import annotations

import html
import logging

from aiohttp import web

from bot.keys import CORE
from sync.contract import ProviderError, Refused
from sync.contract.troubleshooting import advice
from sync.integrations import registry
from sync.integrations.connect import SavedConnection, finish_oauth
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification, Notifier
from sync.runtime.settings import Settings

__all__ = ["callback_page", "page", "setup_oauth"]

log = logging.getLogger("clinicbot.oauth")


def page(title: str, text: str, status: int = 200, items: tuple[str, ...] = ()) -> web.Response:
    listing = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>clinicbot</title></head>"
        f"<body style='font-family:sans-serif;max-width:36em;margin:4em auto'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p>{f'<ul>{listing}</ul>' if listing else ''}</body></html>"
    )
    return web.Response(text=body, status=status, content_type="text/html")


async def callback_page(core: Core, name: str, query: dict[str, str]) -> web.Response:
    """Finish the sign-in of integration `name` from its callback query, and say what happened."""
    try:
        integration = registry.get(name)
    except Refused:
        return page("Unknown sign-in", "clinicbot does not know this provider.", 404)
    if integration.connect.oauth is None:
        return page("Unknown sign-in", "clinicbot does not know this provider.", 404)
    word = integration.chat_word
    if "error" in query:
        told = advice(query.get("error"), query.get("error_description"), query.get("error_code"))
        if told is not None:  # something the person or their IT can fix: say what, before "try again"
            return page(f"{integration.title} sign-in was not completed: {told.title}",
                        f"{told.words} Then run `connect {word}` in chat.", 400)
        return page(f"{integration.title} sign-in was not completed",
                    f"The sign-in said: {query['error'][:100]}. Run `connect {word}` in chat to try again.", 400)
    if not query.get("state") or not query.get("code"):
        return page("Incomplete sign-in", f"This link is missing its state or code. Run `connect {word}` again.", 400)
    try:
        saved = await finish_oauth(core, name, query, now=core.clock())
    except ProviderError as exc:
        told = advice(str(exc))
        if told is not None:
            return page(f"{integration.title} sign-in failed: {told.title}", told.words, 400)
        return page(f"{integration.title} sign-in failed", str(exc), 400)
    log.info("connected", extra={"integration": name, "connection": saved.connection_id})
    await _tell_in_chat(core, saved, f"{integration.title} connected", saved.summary(integration.title))
    found = tuple(
        f"{c['name'] or 'Calendar'}: {c['role']}{' (read only)' if c['read_only'] else ''}" for c in saved.calendars
    )
    return page(
        f"{integration.title} connected",
        f"clinicbot found {len(found)} calendar{'' if len(found) == 1 else 's'} for {saved.account or 'the account'} "
        "and syncs them shortly: bookings come from the source calendar, the others block busy times. "
        "You can close this window; `status` in chat shows them, and an admin can change their roles.",
        items=found,
    )


async def _tell_in_chat(core: Core, saved: SavedConnection, title: str, text: str) -> None:
    """DM the person who typed `connect` what was found (best effort: the page says it too)."""
    chat_identity_id = saved.config.get("chat_identity_id")
    notifier = core.services.notifier
    if not isinstance(chat_identity_id, int) or not isinstance(notifier, Notifier):
        return
    try:
        await notifier.notify(Notification(kind="notice", practice_id=saved.practice_id,
                                           chat_identity_id=chat_identity_id, data={"title": title, "text": text}))
    except DeliveryError as exc:
        log.warning("connect result not sent in chat", extra={"connection": saved.connection_id, "error": str(exc)})


def setup_oauth(app: web.Application, settings: Settings) -> str | None:
    async def callback(request: web.Request) -> web.Response:
        return await callback_page(request.app[CORE], request.match_info["provider"], dict(request.query))

    app.router.add_get("/oauth/{provider}/callback", callback)
    return None
