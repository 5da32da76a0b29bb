"""Reminder, follow-up and booking-request views -> Block Kit (bot.slack.render dispatches here).

Kept apart from bot.slack.render so each stays small. The follow-up's buttons carry distinct
action ids within their block, as Slack requires.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.commands.actions import Action, BookFollowUp, MarkAttended, MarkNoShow, ShowDetails
from bot.slack.elements import button, esc
from bot.views import AgendaItem, FollowUp, FollowUpRequest, ReminderCard, ReminderHealth

__all__ = ["REMINDER_VIEWS", "blocks_for", "reminder_health_blocks"]

REMINDER_VIEWS = (ReminderCard, FollowUp, FollowUpRequest)
_LABELS: dict[type[Any], tuple[str, str | None]] = {
    MarkAttended: ("Attended", "primary"),
    MarkNoShow: ("No-show", "danger"),
    BookFollowUp: ("Book follow-up", None),
    ShowDetails: ("Details", None),
}


def _esc(text: str) -> str:
    return esc(text)


def _button(action: Action) -> Any:
    label, style = _LABELS.get(type(action), (None, None))
    b = button(action, label)
    if type(action) in _LABELS:
        b.style = style
    return b


def _md(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=text[:3000]))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text[:3000])])


def _facts(item: AgendaItem, date_label: str, location: str = "") -> SectionBlock:
    fields = [
        MarkdownTextObject(text=f"*When*\n{date_label} {item.time_label}"),
        MarkdownTextObject(text=f"*Client*\n{_esc(item.client)}"),
    ]
    if item.service:
        fields.append(MarkdownTextObject(text=f"*Service*\n{_esc(item.service)}"))
    if location:
        fields.append(MarkdownTextObject(text=f"*Where*\n{_esc(location[:500])}"))
    fields.append(MarkdownTextObject(text=f"*Practitioner*\n{_esc(item.practitioner)}"))
    return SectionBlock(
        block_id=f"appt:{item.appointment_id}", text=MarkdownTextObject(text=f"*{item.ref}*"), fields=fields
    )


def _actions(item: AgendaItem, actions: tuple[Action, ...]) -> list[Block]:
    if not actions:
        return []
    return [ActionsBlock(block_id=f"acts:{item.appointment_id}", elements=[_button(a) for a in actions])]


def _reminder(view: ReminderCard) -> tuple[str, list[Block]]:
    late = "  :hourglass: _late: sent after its planned time_" if view.late else ""
    blocks: list[Block] = [
        _md(f":bell: *{_esc(view.headline)}*{late}"),
        _facts(view.item, view.date_label, view.location),
    ]
    blocks += _actions(view.item, view.item.actions)
    blocks.append(_context(f"Times in {view.timezone}"))
    text = f"{view.headline}: {view.item.ref} at {view.item.time_label}" + (" (late)" if view.late else "")
    return text, blocks


def _followup(view: FollowUp) -> tuple[str, list[Block]]:
    blocks: list[Block] = []
    if view.notice:
        blocks.append(_md(f":information_source: {_esc(view.notice)}"))
    blocks.append(_md(f"*How did {view.item.ref} go?*"))
    blocks.append(_facts(view.item, view.date_label))
    if view.outcome:
        blocks.append(_md(f":white_check_mark: {_esc(view.outcome)}"))
    if view.slots:
        blocks.append(_md("*Next free slots*\n" + "\n".join(f"• {_esc(s)}" for s in view.slots)))
    if view.booking_note:
        blocks.append(_context(_esc(view.booking_note)))
    blocks += _actions(view.item, view.actions)
    text = view.notice or view.outcome or f"How did {view.item.ref} go?"
    return text, blocks


def _request(view: FollowUpRequest) -> tuple[str, list[Block]]:
    item = view.item
    slots = "\n".join(f"• {_esc(s)}" for s in view.slots) or "No free slot found in the next two weeks."
    blocks: list[Block] = [
        _md(
            f":calendar: *Please book a follow-up* for the client of {item.ref} "
            f"({_esc(item.service or 'same service')}, {view.duration_minutes} min with {_esc(item.practitioner)}).\n"
            f"Asked by {_esc(view.requested_by)}. clinicbot cannot create bookings itself: "
            "book it in the booking system."
        ),
        _facts(item, view.date_label),
        _md(f"*{_esc(item.practitioner)}'s next free slots* ({view.timezone})\n{slots}"),
    ]
    blocks += _actions(item, item.actions)
    return f"Please book a follow-up for {item.ref}", blocks


def blocks_for(view: ReminderCard | FollowUp | FollowUpRequest) -> tuple[str, list[Block]]:
    """(fallback text, blocks) for one reminder-side view."""
    if isinstance(view, ReminderCard):
        return _reminder(view)
    if isinstance(view, FollowUp):
        return _followup(view)
    return _request(view)


def reminder_health_blocks(health: ReminderHealth) -> list[Block]:
    """The reminders line of the status message."""
    icon = ":large_green_circle:" if health.healthy else ":red_circle:"
    extra = f"\nNext due: {health.next_due}" if health.next_due else ""
    if health.last_error:
        extra += f"\nLast error: {_esc(health.last_error)}"
    return [_md(f"{icon} *Reminders* {health.summary}{extra}")]
