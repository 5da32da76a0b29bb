"""Lead views -> Adaptive Card 1.5 parts (bot.teams.cards dispatches here): the lead card, with its
fitting slots (Propose, Book directly) and Mark lost, answered in place like every Action.Execute."""

from __future__ import annotations

from typing import Any

from bot.commands.actions import Action, BookLead, MarkLeadLost, ProposeLead
from bot.teams.card_parts import Json, action_button, fact_set, text
from bot.views import LeadCardView, LeadList

__all__ = ["LEAD_VIEWS", "parts_for"]

LEAD_VIEWS = (LeadCardView, LeadList)
MAX_LISTED = 10
_TITLES: dict[type[Any], tuple[str, str | None]] = {
    ProposeLead: ("Propose", "positive"),
    BookLead: ("Book directly", None),
    MarkLeadLost: ("Mark lost", "destructive"),
}


def _button(action: Action) -> Json:
    title, style = _TITLES.get(type(action), ("Open", None))
    return action_button(action, title, style=style)


def _card(view: LeadCardView) -> tuple[list[Json], list[Json]]:
    body: list[Json] = [text(view.headline, size="Medium", weight="Bolder"), fact_set(view.facts)]
    for slot in view.slots:
        buttons = [_button(a) for a in (slot.propose, slot.book) if a is not None]
        items: list[Json] = [text(slot.label, weight="Bolder")]
        if buttons:
            items.append({"type": "ActionSet", "actions": buttons})
        body.append({"type": "Container", "separator": True, "items": items})
    if view.note:
        body.append(text(view.note, isSubtle=True))
    if view.outcome:
        body.append(text(view.outcome, color="Good", weight="Bolder"))
    return body, [_button(a) for a in view.actions]


def parts_for(view: LeadCardView | LeadList) -> tuple[list[Json], list[Json]]:
    """(body, actions) of the card for a lead view."""
    if isinstance(view, LeadCardView):
        return _card(view)
    body: list[Json] = [text("Open leads", size="Medium", weight="Bolder")]
    if not view.cards:
        body.append(text(view.empty_text, isSubtle=True))
    for card in view.cards[:MAX_LISTED]:
        inner, actions = _card(card)
        if actions:
            inner.append({"type": "ActionSet", "actions": actions})
        body.append({"type": "Container", "separator": True, "items": inner})
    if len(view.cards) > MAX_LISTED:
        body.append(text(f"{len(view.cards) - MAX_LISTED} more not shown; `leads L-12` shows one.", isSubtle=True))
    return body, []
