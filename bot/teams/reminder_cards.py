"""Reminder, follow-up and booking-request views -> Adaptive Card 1.5 parts (bot.teams.cards dispatches here).

Buttons are Action.Execute with an Action.Submit fallback (cards.action_button), so pressing
Attended on Teams answers the invoke with this same card, updated in place.
"""

from __future__ import annotations

from typing import Any

from bot.commands.actions import Action, BookFollowUp, MarkAttended, MarkNoShow
from bot.teams.card_parts import action_button, fact_set
from bot.views import AgendaItem, FollowUp, FollowUpRequest, ReminderCard, ReminderHealth

__all__ = ["REMINDER_VIEWS", "parts_for", "reminder_health_part"]

Json = dict[str, Any]
REMINDER_VIEWS = (ReminderCard, FollowUp, FollowUpRequest)
_TITLES: dict[type[Any], tuple[str, str | None]] = {
    MarkAttended: ("Attended", "positive"),
    MarkNoShow: ("No-show", "destructive"),
    BookFollowUp: ("Book follow-up", None),
}


def _text(value: str, **extra: Any) -> Json:
    return {"type": "TextBlock", "text": value, "wrap": True, **extra}


def _buttons(actions: tuple[Action, ...]) -> list[Json]:
    out = []
    for action in actions:
        title, style = _TITLES.get(type(action), (None, None))
        out.append(action_button(action, title, style=style))
    return out


def _facts(item: AgendaItem, date_label: str, location: str = "") -> Json:
    facts = [
        ("When", f"{date_label} {item.time_label}"),
        ("Client", item.client),
        ("Service", item.service),
        ("Where", location),
        ("Practitioner", item.practitioner),
    ]
    return _fact_set(facts)


def _reminder(view: ReminderCard) -> tuple[list[Json], list[Json]]:
    body = [_text(f"{view.headline} · {view.item.ref}", size="Medium", weight="Bolder")]
    if view.late:
        body.append(_text("Late: sent after its planned time", color="Warning", weight="Bolder", spacing="None"))
    body += [_facts(view.item, view.date_label, view.location), _text(f"Times in {view.timezone}", isSubtle=True)]
    return body, _buttons(view.item.actions)


def _followup(view: FollowUp) -> tuple[list[Json], list[Json]]:
    body: list[Json] = []
    if view.notice:
        body.append(_text(view.notice, color="Accent", weight="Bolder"))
    body += [_text(f"How did {view.item.ref} go?", size="Medium", weight="Bolder"), _facts(view.item, view.date_label)]
    if view.outcome:
        body.append(_text(view.outcome, color="Good", weight="Bolder"))
    if view.slots:
        body.append(_text("Next free slots", weight="Bolder", spacing="Medium"))
        body += [_text(f"- {s}", spacing="None") for s in view.slots]
    if view.booking_note:
        body.append(_text(view.booking_note, isSubtle=True))
    return body, _buttons(view.actions)


def _request(view: FollowUpRequest) -> tuple[list[Json], list[Json]]:
    item = view.item
    body = [
        _text("Please book a follow-up", size="Medium", weight="Bolder"),
        _text(
            f"For the client of {item.ref} ({item.service or 'same service'}, {view.duration_minutes} min with "
            f"{item.practitioner}). Asked by {view.requested_by}. clinicbot cannot create bookings itself: "
            "book it in the booking system."
        ),
        _facts(item, view.date_label),
        _text(f"{item.practitioner}'s next free slots ({view.timezone})", weight="Bolder", spacing="Medium"),
    ]
    body += [_text(f"- {s}", spacing="None") for s in view.slots] or [
        _text("No free slot found in the next two weeks.", isSubtle=True)
    ]

    return body, [action_button(a) for a in item.actions]


def parts_for(view: ReminderCard | FollowUp | FollowUpRequest) -> tuple[list[Json], list[Json]]:
    """(body, actions) of the card for one reminder-side view."""
    if isinstance(view, ReminderCard):
        return _reminder(view)
    if isinstance(view, FollowUp):
        return _followup(view)
    return _request(view)


def reminder_health_part(health: ReminderHealth) -> Json:
    """The reminders section of the status card."""
    facts = [
        ("Planned", str(health.planned)),
        ("Retrying", str(health.retrying)),
        ("Failed", str(health.failed)),
        ("Unknown", str(health.unknown)),
    ]
    if health.dropped:
        facts.append(("Missed while down", str(health.dropped)))
    if health.next_due:
        facts.append(("Next due", health.next_due))
    if health.last_error:
        facts.append(("Last error", health.last_error))
    return {
        "type": "Container",
        "separator": True,
        "items": [
            _text("Reminders" + ("" if health.healthy else " · needs attention"), weight="Bolder"),
            _fact_set(facts),
        ],
    }


def _fact_set(facts: list[tuple[str, str]]) -> Json:
    return fact_set(facts)
