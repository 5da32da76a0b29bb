"""`staff`, `staff map`, `staff unmap`: admins say which practitioner a booking platform's staff member is.

Talks to sync.services.staff only; the practitioner is found the way every command finds one.
"""

from __future__ import annotations

from bot.commands.access import require_admin
from bot.commands.appointments import person_practitioner
from bot.commands.errors import ParseError
from bot.commands.grammar import MapStaff
from bot.commands.identity import Actor
from bot.commands.staff_card import staff_card
from bot.views import Notice, View
from sync.runtime.core import Core
from sync.services.staff import StaffError
from sync.services.staff_mapping import map_member, unmap_member

__all__ = ["staff_command"]


async def staff_command(core: Core, actor: Actor, cmd: MapStaff) -> View:
    require_admin(actor, "map booking-platform staff")
    practitioner = None
    if cmd.action == "map":
        assert cmd.who is not None
        practitioner = await person_practitioner(core, actor, cmd.who)
    try:
        if practitioner is not None:
            done = await map_member(core, practitioner.id, cmd.integration, cmd.external_id, actor=actor.audit_name)
            return Notice(f"{done.integration} {done.kind} {done.external_id} is now @{done.practitioner}; "
                          "their bookings waiting without a practitioner are theirs now.", title="Staff mapped")
        if cmd.action == "unmap":
            done = await unmap_member(core, actor.practice_id, cmd.integration, cmd.external_id,
                                      actor=actor.audit_name)
            return Notice(f"{done.integration} {done.external_id} is no longer mapped to @{done.practitioner}; "
                          "new bookings for it are listed as unassigned.", title="Staff unmapped")
    except StaffError as exc:
        raise ParseError(str(exc), "staff map square TMabc123 @dr-lee") from None
    # `staff` alone: the card with a practitioner picker for each unmapped staff member.
    return await staff_card(core, actor)
