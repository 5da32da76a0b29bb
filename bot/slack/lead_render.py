"""Lead views -> Block Kit: the lead card (its fitting slots with Propose and Book) and the `leads` list.

Kept apart from bot.slack.render (which dispatches here). Each actions block holds distinct action
ids, as Slack requires within one block: one block per slot (Propose, Book), one for Mark lost.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.commands.actions import Action, BookLead, MarkLeadLost, ProposeLead
from bot.slack.elements import button, clip, esc
from bot.views import LeadCardView, LeadList

__all__ = ["LEAD_VIEWS", "blocks_for"]

LEAD_VIEWS = (LeadCardView, LeadList)
_LABELS: dict[type[Any], tuple[str, str | None]] = {
    ProposeLead: ("Propose", "primary"),
    BookLead: ("Book directly", None),
    MarkLeadLost: ("Mark lost", "danger"),
}
MAX_LISTED = 10


def _button(action: Action) -> ButtonElement:
    label, style = _LABELS.get(type(action), ("Open", None))
    made = button(action, label)
    made.style = style
    return made


def _card(view: LeadCardView) -> list[Block]:
    facts = "\n".join(f"*{esc(k)}:* {esc(v)}" for k, v in view.facts)
    blocks: list[Block] = [
        SectionBlock(block_id=f"lead:{view.lead_id}",
                     text=MarkdownTextObject(text=clip(f":seedling: *{esc(view.headline)}*\n{facts}", 3000))),
    ]
    for n, slot in enumerate(view.slots):
        buttons = [_button(a) for a in (slot.propose, slot.book) if a is not None]
        blocks.append(SectionBlock(block_id=f"lead_slot:{view.lead_id}:{n}",
                                   text=MarkdownTextObject(text=f":calendar: {esc(slot.label)}")))
        if buttons:
            blocks.append(ActionsBlock(block_id=f"lead_slot_acts:{view.lead_id}:{n}", elements=buttons))
    if view.note:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=clip(esc(view.note), 3000))]))
    if view.outcome:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=clip(f":white_check_mark: {esc(view.outcome)}", 3000))]))
    if view.actions:
        blocks.append(ActionsBlock(block_id=f"lead_acts:{view.lead_id}", elements=[_button(a) for a in view.actions]))
    return blocks


def blocks_for(view: LeadCardView | LeadList) -> tuple[str, list[Block]]:
    """Fallback text and blocks for a lead view."""
    if isinstance(view, LeadCardView):
        return clip(view.headline + (f" — {view.outcome}" if view.outcome else ""), 300), _card(view)
    blocks: list[Block] = [HeaderBlock(text="Open leads")]
    if not view.cards:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=esc(view.empty_text))))
    for card in view.cards[:MAX_LISTED]:
        blocks.extend(_card(card))
    if len(view.cards) > MAX_LISTED:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"{len(view.cards) - MAX_LISTED} more not shown; `leads L-12` shows one.")]))
    return f"{len(view.cards)} open lead{'s' if len(view.cards) != 1 else ''}", blocks
