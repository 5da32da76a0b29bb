"""Adaptive Card pieces every Teams card module uses (escaped text, fact sets, Action.Execute buttons), in a
module of their own so the card renderers (cards, conflict_cards, reminder_cards) share them without
importing each other."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bot.commands.actions import (
    Action,
    AskCancel,
    CancelConfirmed,
    OpenReschedule,
    ShowDetails,
    SubmitReschedule,
    TrackEvent,
    UntrackEvent,
    encode,
)

__all__ = ["Json", "action_button", "execute", "fact_set", "open_url", "plain", "text"]

Json = dict[str, Any]

_TITLES: dict[type[Any], str] = {
    OpenReschedule: "Reschedule",
    AskCancel: "Cancel",
    ShowDetails: "Details",
    SubmitReschedule: "Move",
    CancelConfirmed: "Cancel appointment",
    TrackEvent: "Track",
    UntrackEvent: "Untrack",
}


def plain(value: str) -> str:
    """Text with `<` and `>` escaped: Teams reads `<id>` as an HTML tag and drops it."""
    return value.replace("<", "&lt;").replace(">", "&gt;")


def text(value: str, **extra: Any) -> Json:
    """A wrapping TextBlock; angle brackets shown as typed (see `plain`)."""
    return {"type": "TextBlock", "text": plain(value), "wrap": True, **extra}


def fact_set(facts: Iterable[tuple[str, str]]) -> Json:
    """A FactSet of (title, value) pairs, skipping empty values, angle brackets shown as typed."""
    return {"type": "FactSet", "facts": [{"title": plain(k), "value": plain(v)} for k, v in facts if v]}


def execute(title: str, verb: str, data: Json, *, style: str | None = None) -> Json:
    """Action.Execute with an Action.Submit fallback carrying the same verb and data."""
    payload = {"verb": verb, **data}
    button: Json = {
        "type": "Action.Execute",
        "title": title,
        "verb": verb,
        "data": payload,
        "fallback": {"type": "Action.Submit", "title": title, "data": payload},
    }
    if style:
        button["style"] = style
        button["fallback"]["style"] = style
    return button


def action_button(action: Action, title: str | None = None, *, style: str | None = None) -> Json:
    """A card button for a typed command-layer action."""
    verb, value = encode(action)
    return execute(title or _TITLES.get(type(action), verb), verb, json.loads(value), style=style)


def open_url(title: str, url: str) -> Json:
    return {"type": "Action.OpenUrl", "title": title, "url": url}
