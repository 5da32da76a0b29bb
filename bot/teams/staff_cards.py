"""The staff card -> Adaptive Card: the mappings, and a practitioner picker for the unmapped staff member
with the most bookings waiting (one form a card, so its input ids stay unique); the others are listed
and come up in turn, as the card updates in place after each mapping.
"""

from __future__ import annotations

import json
from typing import Any

from bot.commands.actions import MapStaffMember, encode
from bot.views import StaffCard

__all__ = ["parts_for"]

Json = dict[str, Any]


def _text(value: str, **extra: Any) -> Json:
    return {"type": "TextBlock", "text": value.replace("<", "&lt;").replace(">", "&gt;"), "wrap": True, **extra}


def _map_button(action: MapStaffMember) -> Json:
    """Action.Execute (Submit as the fallback) whose data, merged with the picker's "p", is the action."""
    verb, value = encode(action)
    payload = {"verb": verb, **json.loads(value)}
    return {"type": "Action.Execute", "title": "Map", "verb": verb, "data": payload, "style": "positive",
            "fallback": {"type": "Action.Submit", "title": "Map", "data": payload, "style": "positive"}}


def parts_for(view: StaffCard) -> tuple[list[Json], list[Json]]:
    """(body, actions) of the card."""
    body: list[Json] = [_text("Staff on booking platforms", size="Medium", weight="Bolder")]
    if view.notice:
        body.append(_text(view.notice, color="Good", weight="Bolder"))
    body += [_text(f"• {m}", spacing="None") for m in view.mappings]
    if not view.unmapped:
        body.append(_text("Every staff member is mapped." if view.mappings else
                          "No booking-platform staff yet: `connect square`, `connect acuity` or `connect calendly`.",
                          isSubtle=True))
        return body, []
    first, *rest = view.unmapped
    waiting = f"{first.waiting} booking{'s' if first.waiting != 1 else ''} waiting" if first.waiting \
        else "no bookings yet"
    body.append(_text(f"{first.name} on {first.platform} ({first.external_id}) is not mapped: {waiting}.",
                      weight="Bolder", spacing="Medium"))
    if not view.practitioners:
        body.append(_text("There are no practitioners to choose from yet: add them first.", isSubtle=True))
        return body, []
    body.append({"type": "Input.ChoiceSet", "id": "p", "label": "Who is this?", "style": "compact",
                 "isRequired": True, "errorMessage": "Choose a practitioner",
                 "choices": [{"title": name, "value": str(pid)} for pid, name in view.practitioners[:100]]})
    if rest:
        body.append(_text("Then: " + ", ".join(f"{m.name} on {m.platform} ({m.waiting})" for m in rest),
                          isSubtle=True))
    return body, [_map_button(MapStaffMember(first.calendar_id))]
