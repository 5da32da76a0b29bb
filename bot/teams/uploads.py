"""A shift schedule export sent to the bot in a Teams personal chat: read, imported and published.

Teams hands a bot a file sent in a personal chat as an attachment of type
`application/vnd.microsoft.teams.file.download.info`, whose `downloadUrl` is pre-authenticated and
short-lived. Only admins may publish a schedule; the file is fetched with a size cap and a time
limit (never more than the reader accepts), then goes the way `clinicbot shifts import` goes.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.commands.access import Forbidden, require_admin
from bot.commands.identity import Actor
from bot.views import Error, Notice, View
from sync.runtime.core import Core
from sync.services import shifts as service
from sync.services.errors import ServiceError

__all__ = ["FILE_INFO", "MAX_BYTES", "file_attachment", "import_upload"]

log = logging.getLogger("clinicbot.teams.uploads")

FILE_INFO = "application/vnd.microsoft.teams.file.download.info"
#: The schedule reader's own limit: a larger file is refused before all of it is fetched.
MAX_BYTES = 10 * 1024 * 1024
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
#: Changes published inside the chat turn; more go to the periodic publish job.
INLINE_CHANGES = 200
TOO_BIG = f"The file is larger than {MAX_BYTES // 1024 // 1024} MB; export a shorter window."


def file_attachment(attachments: Any) -> dict[str, Any] | None:
    """The first file a person sent (name, type, download URL), or None."""
    for item in attachments or ():
        kind = getattr(item, "content_type", None)
        content = getattr(item, "content", None)
        if kind == FILE_INFO and isinstance(content, dict) and isinstance(content.get("downloadUrl"), str):
            return {"name": str(getattr(item, "name", None) or "schedule.csv")[:200],
                    "type": str(content.get("fileType") or ""), "url": content["downloadUrl"]}
    return None


def _allowed(url: str, allow_private: bool) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme == "http" and allow_private and parts.hostname:
        try:
            return ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            return parts.hostname == "localhost"
    return False


async def _fetch(url: str, allow_private: bool, transport: httpx.AsyncBaseTransport | None) -> bytes:
    if not _allowed(url, allow_private):
        raise ServiceError("Teams sent a download link clinicbot does not fetch (not https).")
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, transport=transport) as client:
        try:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ServiceError(f"Teams answered {response.status_code} for the file; send it again.")
                declared = response.headers.get("content-length", "")
                if declared.isascii() and declared.isdigit() and int(declared) > MAX_BYTES:
                    raise ServiceError(TOO_BIG)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise ServiceError(TOO_BIG)
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise ServiceError(f"The file could not be fetched from Teams ({type(exc).__name__}); send it again.") \
                from None


async def import_upload(core: Core, actor: Actor, file: dict[str, Any]) -> View:
    """Import and publish a schedule an admin sent; every refusal says what to do."""
    try:
        require_admin(actor, "publish a shift schedule")
    except Forbidden as exc:
        return Error(str(exc), kind="forbidden")
    name = file["name"]
    transport = core.services.http_transport if isinstance(core.services.http_transport,
                                                              httpx.AsyncBaseTransport) else None
    try:
        data = await _fetch(file["url"], core.settings.allow_private_urls, transport)
        snapshot = await service.parse_upload(core, actor.practice_id, name, data)
        summary = await service.import_schedule(core, actor.practice_id, snapshot,
                                                actor=actor.audit_name)
    except ServiceError as exc:
        return Error(f"{name}: {exc}", "send the scheduler's CSV export of the published schedule", kind="input")
    lines = [f"{summary.shifts} shifts ({summary.published} published) read from {name}."]
    changes = summary.to_create + summary.to_update + summary.to_delete
    if changes > INLINE_CHANGES:
        # Teams wants its answer within seconds: the leader's publish job writes these within minutes.
        lines.append(f"{changes} changes go to Outlook in the background within "
                     f"{service.PUBLISH_EVERY_SECONDS // 60} minutes; `clinicbot shifts publish` does it at once.")
        return Notice("\n".join(lines), title="Shift schedule stored")
    try:
        published = await service.publish(core, actor.practice_id, actor=actor.audit_name)
    except ServiceError as exc:
        lines.append(f"The schedule is stored, but not published: {exc}")
        return Notice("\n".join(lines), title="Shift schedule")
    lines.append(f"Outlook: {published.created} added, {published.updated} changed, {published.deleted} removed"
                 + (f", {published.failed} failed (they stay pending: `clinicbot shifts publish`)"
                    if published.failed else "") + ".")
    if summary.unmapped:
        lines.append(f"No Microsoft sign-in in {summary.identity_field}, so nothing sent: "
                     f"{', '.join(summary.unmapped[:20])}" + (" ..." if len(summary.unmapped) > 20 else ""))
    if published.unknown_people:
        lines.append(f"Not known to Microsoft 365: {', '.join(published.unknown_people[:20])}")
    return Notice("\n".join(lines), title="Shift schedule published")
