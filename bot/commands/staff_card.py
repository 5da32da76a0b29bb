"""The staff card (admins): booking-platform staff nobody is mapped to, each with a practitioner picker.

`staff` answers with it; choosing a practitioner maps that staff member through the services'
identities (the same as `staff map`), which gives them the bookings that were waiting and mirrors
those, and the card comes back updated with what was done.
"""

from __future__ import annotations

from bot.commands.access import require_admin
from bot.commands.actions import MapStaffMember
from bot.commands.errors import ParseError
from bot.commands.identity import Actor
from bot.views import StaffCard, StaffMember, View
from sync.runtime.core import Core
from sync.services.staff import StaffError
from sync.services.unmapped_staff import map_from_staff_card, staff_overview

__all__ = ["map_from_card", "staff_card"]

_EXAMPLE = "staff map square TMabc123 @dr-lee"


async def staff_card(core: Core, actor: Actor, notice: str = "") -> StaffCard:
    """The card as it stands: mappings, unmapped staff (most bookings waiting first), the practitioners."""
    require_admin(actor, "map booking-platform staff")
    seen = await staff_overview(core, actor.practice_id)
    return StaffCard(
        mappings=tuple(f"{m.integration} {m.kind} {m.external_id} → @{m.practitioner}" for m in seen.mappings),
        unmapped=tuple(StaffMember(u.calendar_id, u.title, u.external_id, u.name, u.waiting) for u in seen.unmapped),
        practitioners=seen.practitioners,
        notice=notice,
    )


async def map_from_card(core: Core, actor: Actor, action: MapStaffMember) -> View:
    """A practitioner chosen on the card: map, assign what waited, answer with the card updated."""
    require_admin(actor, "map booking-platform staff")
    if action.practitioner_id is None:
        raise ParseError("choose the practitioner this staff member is, then press Map", _EXAMPLE)
    try:
        done = await map_from_staff_card(core, actor.practice_id, action.calendar_id, action.practitioner_id,
                                         actor=actor.audit_name)
    except StaffError as exc:
        raise ParseError(str(exc), _EXAMPLE) from None
    m, n = done.mapping, done.assigned
    taken = (f"the {n} booking{'s' if n != 1 else ''} waiting for them {'are' if n != 1 else 'is'} theirs now"
             if n else "no bookings were waiting for them")
    return await staff_card(core, actor, notice=f"{m.integration} {m.external_id} is now @{m.practitioner}; {taken}.")
