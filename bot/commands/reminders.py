"""`remind ...`: a practitioner's own reminder settings (the rules live in sync.notify.reminders)."""

from __future__ import annotations

from bot.commands.access import Forbidden, require_any_role
from bot.commands.grammar import SetReminders
from bot.commands.identity import Actor
from bot.views import Notice, View
from sync.notify.reminders.commands import set_reminders
from sync.runtime.core import Core

__all__ = ["remind"]


async def remind(core: Core, actor: Actor, command: SetReminders) -> View:
    """Show or change the actor's reminder settings; replans their reminders at once."""
    require_any_role(actor)
    if actor.practitioner_id is None:
        raise Forbidden(
            "reminders are for practitioners; an admin can link you with `role grant practitioner @you @dr-lee`"
        )
    summary = await set_reminders(
        core, actor.practice_id, actor.practitioner_id, command.text, actor=actor.audit_name
    )
    return Notice(text=summary, title="Reminders")
