"""A shift schedule export sent to the bot in a Teams personal chat: read, imported and published.

Teams hands a bot a file sent in a personal chat as an attachment of type
`application/vnd.microsoft.teams.file.download.info`, whose `downloadUrl` is pre-authenticated and
short-lived. The fetch, the cap and the import are chat's own (bot.commands.shift_upload).
"""

from __future__ import annotations

from typing import Any

from bot.commands.identity import Actor
from bot.commands.shift_upload import MAX_BYTES, fetch_file, import_file, require_publisher
from bot.views import Error, View
from sync.runtime.core import Core
from sync.services.errors import ServiceError

__all__ = ["FILE_INFO", "MAX_BYTES", "file_attachment", "import_upload"]

FILE_INFO = "application/vnd.microsoft.teams.file.download.info"


def file_attachment(attachments: Any) -> dict[str, Any] | None:
    """The first file a person sent (name, type, download URL), or None."""
    for item in attachments or ():
        kind = getattr(item, "content_type", None)
        content = getattr(item, "content", None)
        if kind == FILE_INFO and isinstance(content, dict) and isinstance(content.get("downloadUrl"), str):
            return {"name": str(getattr(item, "name", None) or "schedule.csv")[:200],
                    "type": str(content.get("fileType") or ""), "url": content["downloadUrl"]}
    return None


async def import_upload(core: Core, actor: Actor, file: dict[str, Any]) -> View:
    """Import and publish a schedule an admin sent; every refusal says what to do."""
    refused = require_publisher(actor)
    if refused is not None:
        return refused
    name = file["name"]
    try:
        data = await fetch_file(core, file["url"], platform="Teams")
    except ServiceError as exc:
        return Error(f"{name}: {exc}", "send the scheduler's CSV export of the published schedule", kind="input")
    return await import_file(core, actor, name, data)
