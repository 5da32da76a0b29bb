"""A shift schedule export sent to the bot in chat (Teams or Slack): fetched with a cap, imported, published.

Both platforms hand the bot a link to the file: Teams a pre-authenticated, short-lived `downloadUrl`,
Slack a `url_private` that needs the bot token. Only admins may publish a schedule. The file is
fetched with a size cap and a time limit (never more than the reader accepts, stopped as soon as it
passes it), then goes the way `clinicbot shifts import` goes; the answer is the publish summary card.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from bot.commands.access import Forbidden, require_admin
from bot.commands.identity import Actor
from bot.commands.shift_cards import publish_card, second_writer_lines
from bot.views import Error, View
from sync.contract import ProviderError
from sync.runtime.core import Core
from sync.services import shifts as service
from sync.services.errors import ServiceError

__all__ = ["INLINE_CHANGES", "MAX_BYTES", "TOO_BIG", "fetch_file", "import_file", "require_publisher"]

log = logging.getLogger("clinicbot.shifts.uploads")

#: The schedule reader's own limit: a larger file is refused before all of it is fetched.
MAX_BYTES = 10 * 1024 * 1024
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
#: Changes published inside the chat turn; more go to the periodic publish job.
INLINE_CHANGES = 200
#: The second-writer check after a chat upload (already past the ack): a sample of calendars, briefly.
UPLOAD_CHECK_MAILBOXES = 5
UPLOAD_CHECK_SECONDS = 5.0
TOO_BIG = f"The file is larger than {MAX_BYTES // 1024 // 1024} MB; export a shorter window."


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


def _transport(core: Core) -> httpx.AsyncBaseTransport | None:
    given = core.services.http_transport
    return given if isinstance(given, httpx.AsyncBaseTransport) else None


async def fetch_file(core: Core, url: str, *, platform: str, headers: Mapping[str, str] | None = None) -> bytes:
    """The file's bytes, at most MAX_BYTES; ServiceError saying what to do otherwise."""
    if not _allowed(url, core.settings.allow_private_urls):
        raise ServiceError(f"{platform} sent a download link clinicbot does not fetch (not https).")
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, transport=_transport(core)) as client:
        try:
            async with client.stream("GET", url, headers=dict(headers or {})) as response:
                if response.status_code != 200:
                    raise ServiceError(f"{platform} answered {response.status_code} for the file; send it again.")
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
            raise ServiceError(f"The file could not be fetched from {platform} ({type(exc).__name__}); "
                               "send it again.") from None


async def import_file(core: Core, actor: Actor, name: str, data: bytes) -> View:
    """Import and publish a schedule an admin sent; the summary card, or an error saying what to do."""
    try:
        snapshot = await service.parse_upload(core, actor.practice_id, name, data)
        summary = await service.import_schedule(core, actor.practice_id, snapshot, actor=actor.audit_name)
    except ServiceError as exc:
        return Error(f"{name}: {exc}", "send the scheduler's CSV export of the published schedule", kind="input")
    changes = summary.to_create + summary.to_update + summary.to_delete
    if changes > INLINE_CHANGES:
        # Chat wants its answer within seconds: the leader's publish job writes these within minutes.
        return publish_card(name, summary, None, background=changes)
    try:
        published = await service.publish(core, actor.practice_id, actor=actor.audit_name)
    except ServiceError as exc:
        return publish_card(name, summary, None, not_published=str(exc))
    try:
        check = await service.check_second_writers(core, actor.practice_id, mailboxes=UPLOAD_CHECK_MAILBOXES,
                                                   seconds=UPLOAD_CHECK_SECONDS)
        _pid, zone = await service.practice_ref(core, actor.practice_id)
        writers = second_writer_lines(check, zone)
    except (ServiceError, ProviderError) as exc:  # the publish is done; the check runs again within the hour
        log.info("second-writer check after an upload failed", extra={"error": str(exc)[:200]})
        writers = ()
    return publish_card(name, summary, published, writers=writers)


def require_publisher(actor: Actor) -> Error | None:
    """None when `actor` may publish a schedule, else the refusal."""
    try:
        require_admin(actor, "publish a shift schedule")
    except Forbidden as exc:
        return Error(str(exc), kind="forbidden")
    return None
