"""`/files/{token}`: one attachment of a tracked activity, behind a short-lived signed link.

The chat gets only the link (sync.services.attachments.list_files); opening it serves the cached,
encrypted copy or fetches the file from the calendar again. The answer is a download that a
browser does not render or sniff, and is not cached on the way.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import quote

from aiohttp import web

from bot.keys import CORE
from sync.contract import NotGranted, ProviderError
from sync.runtime.settings import Settings
from sync.services.attachments import open_file
from sync.services.errors import NotFound, ServiceError

__all__ = ["setup_files"]

log = logging.getLogger("clinicbot.files")

_SAFE = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Content-Security-Policy": "sandbox",
         "Referrer-Policy": "no-referrer"}


def _page(message: str, status: int) -> web.Response:
    body = (f"<!doctype html><meta charset=utf-8><title>File</title>"
            f"<body style='font-family:sans-serif;max-width:32em;margin:3em auto'><p>{html.escape(message)}</p>")
    return web.Response(text=body, status=status, content_type="text/html", headers=_SAFE)


def _disposition(name: str) -> str:
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)[:150]
    return f"attachment; filename=\"{ascii_name or 'attachment'}\"; filename*=UTF-8''{quote(name[:150], safe='')}"


async def _file(request: web.Request) -> web.Response:
    try:
        served = await open_file(request.app[CORE], request.match_info["token"])
    except ServiceError as exc:
        return _page(str(exc), 404 if isinstance(exc, NotFound) else 400)
    except NotGranted as exc:  # the account's sign-in does not allow reading the file: say how to allow it
        return _page(str(exc), 403)
    except ProviderError as exc:
        log.warning("attachment could not be fetched", extra={"error": type(exc).__name__})
        return _page(f"The calendar could not hand over the file just now ({exc.user_message}); try again.", 502)
    return web.Response(body=served.content, content_type=served.content_type.split(";", 1)[0],
                        headers={**_SAFE, "Content-Disposition": _disposition(served.name)})


def setup_files(app: web.Application, settings: Settings) -> str | None:
    app.router.add_get("/files/{token}", _file)
    return None
