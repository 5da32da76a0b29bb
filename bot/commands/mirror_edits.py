"""`mirror-edits [card|follow|keep]`: what a hand edit of a calendar copy does, for the whole practice.

Staff may look; only admins change it, and the change is audited with the chat user as the actor.
"""

from __future__ import annotations

from bot.commands.access import require_admin, require_staff
from bot.commands.grammar import SetMirrorEdits
from bot.commands.identity import Actor
from bot.views import Notice, View
from sync.runtime.core import Core
from sync.services.mirror_edits import mirror_edits_of, set_mirror_edits

__all__ = ["mirror_edits"]


async def mirror_edits(core: Core, actor: Actor, cmd: SetMirrorEdits) -> View:
    """Show the practice's setting, or (admins) change it."""
    if cmd.mode is None:
        require_staff(actor, "see how calendar edits are handled")
        found = await mirror_edits_of(core, actor.practice_id)
        return Notice(found.sentence() + " Admins change it with `mirror-edits card|follow|keep`.",
                      title="Calendar edits")
    require_admin(actor, "change how calendar edits are handled")
    found = await set_mirror_edits(core, actor.practice_id, cmd.mode, actor=actor.audit_name)
    return Notice(found.sentence(), title="Calendar edits")
