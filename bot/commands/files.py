"""`files A-12`: the files attached to a tracked activity's calendar event, as short-lived links on
the bot (sync.services.attachments); the chat never carries the files themselves."""

from __future__ import annotations

from bot.commands.grammar import ShowFiles
from bot.commands.identity import Actor
from bot.commands.present import moment_label
from bot.commands.work import tracking_limit
from bot.views import Notice, View
from sync.runtime.core import Core
from sync.services import attachments
from sync.services.tracked_events import practice_zone

__all__ = ["show_files"]


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.0f} KB" if size < 1024 * 1024 else f"{size / 1048576:.1f} MB"


async def show_files(core: Core, actor: Actor, cmd: ShowFiles) -> View:
    limit = tracking_limit(actor)
    found = await attachments.list_files(core, actor.practice_id, cmd.appointment_id, only_practitioner=limit)
    if not found.files:
        return Notice(f"{found.ref} has no files attached in its calendar.", "Files")
    # Size 0: a Google Docs file, exported when opened (its size is known only then).
    lines = [(f"• {f.name} ({_size(f.size)}): {f.url}" if f.size else f"• {f.name}: {f.url}") if f.url
             else f"• {f.name}: not handed out here, {f.refused}" for f in found.files]
    until = moment_label(found.expires, await practice_zone(core, actor.practice_id))
    return Notice(f"{found.ref}'s files (the links work until {until}; each file is fetched from the calendar "
                  "when opened and kept encrypted for 7 days at most):\n" + "\n".join(lines), "Files")
