"""Conflict views -> Adaptive Card 1.5 parts (bot.teams.cards dispatches here).

Buttons are the shared Action.Execute + Action.Submit fallback from bot.teams.cards, so a press
comes back as an invoke and the bot answers with the decided card, swapped in place.
"""

from __future__ import annotations

from typing import Any

from bot.commands.actions import AcceptCalendar, Action, KeepBooking, OpenReschedule, ShowDetails
from bot.teams.card_parts import action_button, fact_set
from bot.views import ConflictCard, ConflictList, DoubleBookingCard

__all__ = ["CONFLICT_VIEWS", "parts_for"]

Json = dict[str, Any]
CONFLICT_VIEWS = (ConflictCard, DoubleBookingCard, ConflictList)
MAX_LISTED = 10
_TITLES: dict[type[Any], tuple[str, str | None]] = {
    KeepBooking: ("Keep the booking", "positive"),
    AcceptCalendar: ("Accept the calendar's time", None),
    ShowDetails: ("Open appointment", None),
    OpenReschedule: ("Reschedule", None),
}


def _button(action: Action) -> Json:
    title, style = _TITLES.get(type(action), ("Open", None))
    return action_button(action, title, style=style)


def _text(value: str, **extra: Any) -> Json:
    return {"type": "TextBlock", "text": value, "wrap": True, **extra}


def _conflict(view: ConflictCard) -> tuple[list[Json], list[Json]]:
    facts = [("Practitioner", view.practitioner), ("Service", view.service), ("Calendar", view.calendar),
             ("Booking says", view.booking_time), ("Calendar says", view.calendar_time)]
    body: list[Json] = [
        _text(f"{view.ref} was changed by hand on {view.calendar}", size="Medium", weight="Bolder"),
        _fact_set(facts),
    ]
    if view.outcome:
        body.append(_text(view.outcome, color="Good", weight="Bolder"))
    return body, [_button(a) for a in view.actions]


def _double(view: DoubleBookingCard) -> list[Json]:
    body: list[Json] = [_text(f"Double booking for {view.practitioner}", size="Medium", weight="Bolder",
                              color="Attention")]
    for item, where in view.bookings:
        line = f"{item.ref} · {item.start:%a} {item.start.day} {item.start:%b} {item.time_label}"
        items: list[Json] = [_text(line + (f" · {item.service}" if item.service else ""), weight="Bolder"),
                             _text(where, isSubtle=True, spacing="None")]
        if item.actions and not view.outcome:
            items.append({"type": "ActionSet", "actions": [_button(a) for a in item.actions]})
        body.append({"type": "Container", "separator": True, "items": items})
    if view.outcome:
        body.append(_text(view.outcome, color="Good", weight="Bolder"))
    return body


def parts_for(view: ConflictCard | DoubleBookingCard | ConflictList) -> tuple[list[Json], list[Json]]:
    """(body, actions) of the card for a conflict view."""
    if isinstance(view, ConflictCard):
        return _conflict(view)
    if isinstance(view, DoubleBookingCard):
        return _double(view), []
    body: list[Json] = [_text("Open conflicts", size="Medium", weight="Bolder")]
    if not view.cards:
        body.append(_text(view.empty_text, isSubtle=True))
    for card in view.cards[:MAX_LISTED]:
        if isinstance(card, ConflictCard):
            inner, actions = _conflict(card)
            if actions:
                inner.append({"type": "ActionSet", "actions": actions})
        else:
            inner = _double(card)
        body.append({"type": "Container", "separator": True, "items": inner})
    if len(view.cards) > MAX_LISTED:
        body.append(_text(f"{len(view.cards) - MAX_LISTED} more not shown: decide these first.", isSubtle=True))
    return body, []


def _fact_set(facts: list[tuple[str, str]]) -> Json:
    return fact_set(facts)
