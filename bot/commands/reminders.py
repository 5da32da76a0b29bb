"""`remind ...`: a practitioner's own reminder settings (the rules live in sync.notify.reminders)."""

from __future__ import annotations

from bot.commands.access import Forbidden, require_any_role
from bot.commands.grammar import SetReminders
from bot.commands.identity import Actor
from bot.views import Notice, View
from sync.notify.reminders import apply_reminder_command
from sync.runtime.core import Core
from sync.store.model import Practitioner

__all__ = ["remind"]


async def remind(core: Core, actor: Actor, command: SetReminders) -> View:
    """Show or change the actor's reminder settings; replans their reminders at once."""
    require_any_role(actor)
    if actor.practitioner_id is None:
        raise Forbidden(
            "reminders are for practitioners; an admin can link you with `role grant practitioner @you @dr-lee`"
        )
    async with core.store.session() as session:
        person = await session.get(Practitioner, actor.practitioner_id)
        if person is None or person.practice_id != actor.practice_id:
            raise Forbidden("your practitioner record is gone; ask an admin to link you again")
        summary = await apply_reminder_command(session, person, command.text, actor=actor.audit_name, clock=core.clock)
    return Notice(text=summary, title="Reminders")
