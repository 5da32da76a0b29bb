"""Block Kit pieces every Slack renderer uses (mrkdwn escaping, clipping, action buttons), in a module of
their own so the view renderers (render, conflict_render, reminder_render) share them without importing
each other."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import ButtonElement

from bot.commands.actions import (
    Action,
    AskCancel,
    CancelConfirmed,
    OpenReschedule,
    PickSlot,
    ShowDetails,
    TrackEvent,
    UntrackEvent,
    encode,
)

__all__ = ["ACTION_PREFIX", "INPUT_PREFIX", "LABELS", "button", "button_json", "clip", "esc", "input_action"]

ACTION_PREFIX = "clinic."
#: A message's text box that dispatches on Enter: its block id is INPUT_PREFIX + "<wire key>:" + the action's
#: encoded value; the typed text goes in under the wire key (Slack sends it as the action's "value").
INPUT_PREFIX = "clinic.in:"
MAX_BLOCK_ID = 255  # Slack's cap on a block_id


def input_action(block_id: str, typed: str) -> dict[str, Any] | None:
    """The action value of a text box's dispatch (None: not one of clinicbot's boxes, or malformed)."""
    if not block_id.startswith(INPUT_PREFIX) or len(block_id) > MAX_BLOCK_ID:
        return None
    key, _, encoded = block_id[len(INPUT_PREFIX):].partition(":")
    try:
        doc = json.loads(encoded)
    except ValueError:
        return None
    if not key or not isinstance(doc, dict):
        return None
    return {**doc, key: typed[:500]}
#: Each button kind's label and style.
LABELS: dict[type[Any], tuple[str, str | None]] = {
    OpenReschedule: ("Reschedule", "primary"),
    AskCancel: ("Cancel", "danger"),
    ShowDetails: ("Details", None),
    CancelConfirmed: ("Yes, cancel it", "danger"),
    PickSlot: ("", "primary"),
    TrackEvent: ("Track", None),
    UntrackEvent: ("Untrack", None),
}


def esc(text: str) -> str:
    """Escape people's text for mrkdwn (Slack's three control characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def button_json(action: Action, label: str | None = None) -> dict[str, Any]:
    """`button` as the plain JSON slack_sdk's model gives (built without the model's checks, for the
    answers every request renders: agendas, details, cancel confirmations)."""
    action_id, value = encode(action)
    text, style = LABELS.get(type(action), ("Open", None))
    out: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(label or text, 75), "emoji": True},
        "action_id": ACTION_PREFIX + action_id,
        "value": value,
    }
    if style:
        out["style"] = style
    return out


def button(action: Action, label: str | None = None) -> ButtonElement:
    action_id, value = encode(action)
    text, style = LABELS.get(type(action), ("Open", None))
    return ButtonElement(
        text=clip(label or text, 75), action_id=ACTION_PREFIX + action_id, value=value, style=style
    )
