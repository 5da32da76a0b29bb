"""Conflict views -> Block Kit: the hand-edited-copy card, the double-booking card, the list.

Kept apart from bot.slack.render (which dispatches here) so each stays small. Each actions block
holds distinct action ids, as Slack requires within one block.
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

from bot.commands.actions import AcceptCalendar, Action, KeepBooking, OpenReschedule, ShowDetails
from bot.slack.elements import button, esc
from bot.views import ConflictCard, ConflictList, DoubleBookingCard

__all__ = ["CONFLICT_VIEWS", "blocks_for"]

CONFLICT_VIEWS = (ConflictCard, DoubleBookingCard, ConflictList)
_LABELS: dict[type[Any], str] = {
    KeepBooking: "Keep the booking",
    AcceptCalendar: "Accept the calendar's time",
    ShowDetails: "Open appointment",
    OpenReschedule: "Reschedule",
}
MAX_LISTED = 8  # cards in one `conflicts` answer, under Slack's 50-block cap


def _button(action: Action) -> ButtonElement:
    b = button(action, _LABELS.get(type(action)))
    b.style = "primary" if isinstance(action, (KeepBooking, OpenReschedule)) else None
    return b


def _esc(text: str) -> str:
    return esc(text)


def _md(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=text[:3000]))


def _outcome(text: str) -> Block:
    return ContextBlock(elements=[MarkdownTextObject(text=f":white_check_mark: {_esc(text)}"[:3000])])


def _conflict(view: ConflictCard) -> list[Block]:
    service = f" · {_esc(view.service)}" if view.service else ""
    blocks: list[Block] = [
        _md(f":warning: *{view.ref}* was changed by hand on *{_esc(view.calendar)}*\n"
            f"{_esc(view.practitioner)}{service}"),
        SectionBlock(block_id=f"conflict:{view.conflict_id}", fields=[
            MarkdownTextObject(text=f"*Booking says*\n{_esc(view.booking_time)}"),
            MarkdownTextObject(text=f"*Calendar says*\n{_esc(view.calendar_time)}"),
        ]),
    ]
    if view.outcome:
        blocks.append(_outcome(view.outcome))
    if view.actions:
        blocks.append(ActionsBlock(block_id=f"conflict_acts:{view.conflict_id}",
                                   elements=[_button(a) for a in view.actions]))
    return blocks


def _double(view: DoubleBookingCard) -> list[Block]:
    blocks: list[Block] = [_md(f":rotating_light: *Double booking* for {_esc(view.practitioner)}")]
    for item, where in view.bookings:
        service = f" · {_esc(item.service)}" if item.service else ""
        blocks.append(SectionBlock(
            block_id=f"double:{view.conflict_id}:{item.appointment_id}",
            text=MarkdownTextObject(text=f"*{item.ref}*  {item.start:%a} {item.start.day} {item.start:%b} "
                                         f"{item.time_label}{service}\n_{_esc(where)}_"),
        ))
        if item.actions and not view.outcome:
            blocks.append(ActionsBlock(block_id=f"double_acts:{view.conflict_id}:{item.appointment_id}",
                                       elements=[_button(a) for a in item.actions]))
    if view.outcome:
        blocks.append(_outcome(view.outcome))
    return blocks


def blocks_for(view: ConflictCard | DoubleBookingCard | ConflictList) -> tuple[str, list[Block]]:
    """Fallback text and blocks for a conflict view."""
    if isinstance(view, ConflictCard):
        return f"{view.ref} was changed by hand on {view.calendar}", _conflict(view)
    if isinstance(view, DoubleBookingCard):
        return "Double booking: " + " and ".join(i.ref for i, _ in view.bookings), _double(view)
    blocks: list[Block] = [HeaderBlock(text="Open conflicts")]
    if not view.cards:
        blocks.append(_md(_esc(view.empty_text)))
    for card in view.cards[:MAX_LISTED]:
        blocks.extend(_conflict(card) if isinstance(card, ConflictCard) else _double(card))
    if len(view.cards) > MAX_LISTED:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"{len(view.cards) - MAX_LISTED} more not shown: decide these first.")]))
    return f"{len(view.cards)} open conflict{'s' if len(view.cards) != 1 else ''}", blocks
