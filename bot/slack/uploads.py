"""A shift schedule export sent to the bot in its Slack DM: found in the event, fetched with the bot token.

Slack tells the bot about a file two ways: a `message` event (subtype `file_share`) carrying the
file's `name`, `size` and `url_private`, and a `file_shared` event carrying only its id (then
`files.info` gives the rest). A file sent in the bot's DM raises both, so each file id is handled
once. `url_private` needs the bot token in an Authorization header (scope files:read); the size
Slack states is checked before anything is fetched, and the fetch itself stops at the cap.
Only files in the bot's DM are read: a CSV shared in a channel the bot is in is none of its business.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from bot.commands.shift_upload import MAX_BYTES, TOO_BIG, fetch_file
from sync.runtime.core import Core
from sync.services.errors import ServiceError

__all__ = ["SeenFiles", "SlackFile", "fetch_slack_file", "file_from_info", "files_in_message"]


@dataclass(frozen=True, slots=True)
class SlackFile:
    """A file a person sent the bot: its id, name, stated size and private URL."""

    file_id: str
    name: str
    size: int | None
    url: str


def _file(doc: Any) -> SlackFile | None:
    if not isinstance(doc, dict):
        return None
    file_id, url = doc.get("id"), doc.get("url_private_download") or doc.get("url_private")
    if not isinstance(file_id, str) or not file_id or not isinstance(url, str) or not url:
        return None
    size = doc.get("size")
    name = doc.get("name") or doc.get("title") or "schedule.csv"
    return SlackFile(file_id[:64], str(name)[:200], size if isinstance(size, int) and size >= 0 else None, url)


def files_in_message(event: dict[str, Any]) -> tuple[str, list[SlackFile]]:
    """(DM channel, files) of a message event sent to the bot in its DM; no files for anything else."""
    channel = event.get("channel")
    if event.get("channel_type") != "im" or not isinstance(channel, str) or event.get("bot_id"):
        return "", []
    files = event.get("files")
    found = [f for f in (_file(doc) for doc in files) if f is not None] if isinstance(files, list) else []
    return channel, found


def file_from_info(answer: Any) -> SlackFile | None:
    """The file of a `files.info` answer."""
    return _file(answer.get("file")) if isinstance(answer, dict) else None


class SeenFiles:
    """File ids already handled (bounded): one file raises a message event and a file_shared event."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first(self, file_id: str) -> bool:
        """True the first time `file_id` is seen (and remembers it)."""
        if file_id in self._ids:
            return False
        self._ids[file_id] = None
        while len(self._ids) > self.keep:
            self._ids.popitem(last=False)
        return True


async def fetch_slack_file(core: Core, file: SlackFile, token: str) -> bytes:
    """The file's bytes through the bot token; ServiceError (too big, refused) saying what to do."""
    if file.size is not None and file.size > MAX_BYTES:
        raise ServiceError(TOO_BIG)
    if not token:
        raise ServiceError("clinicbot has no Slack token for this workspace; reinstall the app.")
    return await fetch_file(core, file.url, platform="Slack", headers={"Authorization": f"Bearer {token}"})
