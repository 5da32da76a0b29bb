"""View -> Adaptive Card 1.5, built from Python dicts.

Buttons are `Action.Execute` (Universal Actions: the bot answers the invoke with the refreshed
card and Teams swaps it in place), each with an `Action.Submit` fallback for clients without
Universal Actions. Both carry the same data: `{"verb": <action id>, **wire values}`, so one
handler serves both. Form inputs are named by the action wire keys ("d", "t", "p", "r"), so a
submitted form decodes like any button.

`refresh` (with `userIds`) makes Teams ask the bot for each listed user's own version of a card
shared in a channel or group chat; only read-only views carry it.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.commands.actions import (
    PickSlot,
    ShowDetails,
    SubmitReschedule,
)
from bot.teams import conflict_cards, lead_cards, reminder_cards, shift_cards, staff_cards
from bot.teams.card_parts import Json, action_button, execute, fact_set, open_url, plain, text
from bot.views import (
    Agenda,
    AgendaItem,
    AppointmentDetail,
    ConfirmCancel,
    ConnectInfo,
    Error,
    FollowUp,
    FollowUpRequest,
    Help,
    Notice,
    Reconnect,
    ReminderCard,
    RescheduleForm,
    StaffCard,
    Status,
    View,
    Whoami,
)
from bot.views.models import WorkItem

# The pieces (card_parts) are part of this module's vocabulary: the consent and error cards build with them.
__all__ = [
    "CARD_CONTENT_TYPE", "REFRESH_VERB", "SCHEMA", "action_button", "card", "execute", "fact_set", "open_url", "plain",
    "render", "text",
]

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
REFRESH_VERB = "refresh"
#: Teams honours at most 60 user ids in `refresh.userIds`.
MAX_REFRESH_USERS = 60

#: How a command is typed in Teams (Slack's wording, `/clinic <command>`, means nothing here).
HOW_TO_TYPE = "Send me a command, such as `today`; in a channel or group chat, @mention me first."


def card(
    body: list[Json],
    actions: Iterable[Json] = (),
    *,
    refresh: Json | None = None,
    user_ids: Iterable[str] = (),
) -> Json:
    """An Adaptive Card 1.5; with `refresh`, Teams fetches each listed user's own version."""
    doc: Json = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": "1.5", "body": body or [text(" ")]}
    buttons = list(actions)
    if buttons:
        doc["actions"] = buttons
    ids = list(dict.fromkeys(user_ids))[:MAX_REFRESH_USERS]
    if refresh is not None:
        doc["refresh"] = {
            "action": {
                "type": "Action.Execute",
                "verb": REFRESH_VERB,
                "data": {"verb": REFRESH_VERB, **refresh},
            }
        }
        if ids:
            doc["refresh"]["userIds"] = ids
    return doc


def _heading(value: str) -> Json:
    return text(value, size="Medium", weight="Bolder")


def _error_line(value: str) -> Json:
    return text(value, color="Attention", size="Small", spacing="None")


def _item(item: AgendaItem, *, buttons: bool = True) -> Json:
    who = " · ".join(p for p in (item.client, item.service, item.practitioner) if p)
    status = "" if item.status in ("confirmed", "") else f" ({item.status.replace('_', ' ')})"
    container: Json = {
        "type": "Container",
        "separator": True,
        "items": [
            {
                "type": "ColumnSet",
                "columns": [
                    {"type": "Column", "width": "auto", "items": [text(item.time_label, weight="Bolder")]},
                    {"type": "Column", "width": "stretch", "items": [text(f"{item.ref}  {who}{status}")]},
                ],
            }
        ],
    }
    if buttons and item.actions:
        container["items"].append({"type": "ActionSet", "actions": [action_button(a) for a in item.actions]})
    return container


def _work_item(item: WorkItem) -> Json:
    """One work event: its line (with its reference, and the activity once tracked) and its Track button."""
    tracked = f" · tracked as {item.tracked}" if item.tracked else ""
    container: Json = {"type": "Container", "items": [
        text(f"{item.time_label}  {item.title} · {item.person}  ({item.ref}){tracked}")]}
    if item.actions:
        container["items"].append({"type": "ActionSet", "actions": [action_button(a) for a in item.actions]})
    return container


def _agenda(view: Agenda) -> list[Json]:
    body = [_heading(view.title)]
    if not view.items:
        body.append(text(view.empty_text, isSubtle=True))
    body.extend(_item(i) for i in view.items)
    if view.shifts:
        body.append(text("On shift", weight="Bolder", spacing="Medium", separator=True))
        body.extend(text(f"{w.time_label}  {w.title} · {w.person}") for w in view.shifts)
    if view.work or view.work_unavailable:
        body.append(text("Work calendars (not appointments)", weight="Bolder", spacing="Medium", separator=True))
        body.extend(_work_item(w) for w in view.work)
        body.extend(text(f"{name} could not be read just now", isSubtle=True) for name in view.work_unavailable)
    return body


def _detail(view: AppointmentDetail) -> tuple[list[Json], list[Json]]:
    item = view.item
    body: list[Json] = []
    if view.notice:
        body.append(text(view.notice, color="Good", weight="Bolder"))
    body.append(_heading(f"{item.ref} · {view.date_label} {item.time_label}"))
    if view.note:
        body.append(text(view.note, isSubtle=True))
    facts = [
        ("Client", item.client),
        ("Phone", view.phone),
        ("Service", item.service),
        ("Practitioner", item.practitioner),
        ("Status", item.status.replace("_", " ")),
        ("Location", view.location),
        ("Notes", view.notes),
    ]
    body.append(fact_set(facts))
    if view.calendars:
        body.append(text("Synced to", weight="Bolder", spacing="Medium"))
        body.append(fact_set(view.calendars))
    return body, [action_button(a) for a in item.actions]


def _reschedule(view: RescheduleForm) -> tuple[list[Json], list[Json]]:
    errors = view.errors
    body: list[Json] = [_heading(f"Reschedule {view.ref}"), text(view.summary, isSubtle=True)]
    if errors.get(""):
        body.append(text(errors[""], color="Attention", weight="Bolder"))
    body.append(
        {
            "type": "Input.Date",
            "id": "d",
            "label": "Date",
            "value": view.date.isoformat(),
            "isRequired": True,
            "errorMessage": "Pick a date",
        }
    )
    if errors.get("date"):
        body.append(_error_line(errors["date"]))
    body.append(
        {
            "type": "Input.Time",
            "id": "t",
            "label": f"Time ({view.timezone})",
            "value": view.time,
            "isRequired": True,
            "errorMessage": "Pick a time",
        }
    )
    if errors.get("time"):
        body.append(_error_line(errors["time"]))
    if view.practitioners:
        choice: Json = {
            "type": "Input.ChoiceSet",
            "id": "p",
            "label": "Practitioner",
            "style": "compact",
            "choices": [{"title": label, "value": str(pid)} for pid, label in view.practitioners],
        }
        if view.practitioner_id is not None:
            choice["value"] = str(view.practitioner_id)
        body.append(choice)
    if errors.get("practitioner"):
        body.append(_error_line(errors["practitioner"]))
    submit = SubmitReschedule(view.appointment_id, view.version, None, None, None)
    actions = [
        action_button(submit, "Move", style="positive"),
        action_button(ShowDetails(view.appointment_id), "Back"),
    ]
    if view.suggestions:
        body.append(text("Next free slots", weight="Bolder", spacing="Medium"))
        body.append(
            {
                "type": "ActionSet",
                "actions": [
                    action_button(
                        PickSlot(view.appointment_id, view.version, start, view.practitioner_id), label
                    )
                    for start, label in view.suggestions[:5]
                ],
            }
        )
    return body, actions


def _confirm(view: ConfirmCancel) -> tuple[list[Json], list[Json]]:
    body = [
        _heading(f"Cancel {view.ref}?"),
        text(view.summary),
        {
            "type": "Input.Text",
            "id": "r",
            "label": "Reason (optional)",
            "maxLength": 500,
            "value": view.reason,
        },
    ]
    return body, [
        action_button(view.confirm, "Cancel appointment", style="destructive"),
        action_button(ShowDetails(view.appointment_id), "Keep it"),
    ]


def _status(view: Status) -> list[Json]:
    body = [_heading(f"Sync status · {view.practice}")]
    if not view.connections:
        body.append(
            text("No calendars are connected yet. An admin can start with `connect outlook`.", isSubtle=True)
        )
    for c in view.connections:
        facts = [
            ("Status", c.status + ("" if c.sync_enabled else ", sync off")),
            ("Last sync", c.last_sync),
            ("Pending", str(c.pending)),
            ("Failed", str(c.failed)),
            ("Sign-in", c.token_health),
        ]
        if c.calendars:
            facts.append(("Calendars", ", ".join(c.calendars)))
        if c.last_error:
            facts.append(("Last error", c.last_error))
        body.append(
            {
                "type": "Container",
                "separator": True,
                "items": [
                    text(f"{c.provider} · {c.account}", weight="Bolder"),
                    fact_set(facts),
                ],
            }
        )
    if view.reminders is not None:
        body.append(reminder_cards.reminder_health_part(view.reminders))
    if view.files_kept or view.files_purged:
        body.append(text(f"Tracked activities' files: {view.files_kept} kept (7 days at most) · "
                         f"{view.files_purged} deleted by the last retention run", isSubtle=True))
    if view.shift_publish:
        body.append(text(view.shift_publish, isSubtle=True))
    if view.pending_total or view.failed_total:
        body.append(text(f"{view.pending_total} changes waiting, {view.failed_total} failed", isSubtle=True))
    return body


def _steps(title: str, steps: Iterable[str], url: str | None, button: str) -> tuple[list[Json], list[Json]]:
    body = [_heading(title)] + [text(s) for s in steps]
    return body, ([open_url(button, url)] if url else [])


def render_parts(view: View) -> tuple[list[Json], list[Json]]:
    """(body, actions) of the card for one view."""
    if isinstance(view, conflict_cards.CONFLICT_VIEWS):
        return conflict_cards.parts_for(view)
    if isinstance(view, StaffCard):
        return staff_cards.parts_for(view)
    if isinstance(view, shift_cards.SHIFT_VIEWS):
        return shift_cards.parts_for(view)
    if isinstance(view, lead_cards.LEAD_VIEWS):
        return lead_cards.parts_for(view)
    match view:
        case Agenda():
            return _agenda(view), []
        case AppointmentDetail():
            return _detail(view)
        case RescheduleForm():
            return _reschedule(view)
        case ConfirmCancel():
            return _confirm(view)
        case Status():
            return _status(view), []
        case Whoami():
            facts = [
                ("Name", view.display),
                ("Practice", view.practice),
                ("Roles", ", ".join(view.roles) or "none"),
                ("Practitioner", view.practitioner or ""),
                ("Time zone", view.timezone),
            ]
            return [
                _heading("Who am I"),
                fact_set(facts),
            ], []
        case Help():
            body = [_heading("What I can do")]
            if view.intro:
                body.append(text(f"{HOW_TO_TYPE} {view.intro}"))
            for e in view.entries:
                needs = f" · {e.needs}" if e.needs else ""
                body.append(text(f"**{e.usage}**: {e.summary}{needs}  \ne.g. `{e.example}`", spacing="Small"))
            return body, []
        case Error():
            body = [text(view.message, color="Attention", weight="Bolder")]
            if view.example:
                body.append(text(f"Try: `{view.example}`", isSubtle=True))
            return body, []
        case Notice():
            # One TextBlock per line: Teams joins a TextBlock's single line breaks into one paragraph.
            lines = [text(line) for line in view.text.split("\n") if line.strip()] or [text(view.text)]
            return ([_heading(view.title)] if view.title else []) + lines, []
        case Reconnect():
            steps = view.steps or (
                f"The sign-in for {view.provider} ({view.account}) has expired; sync is "
                "paused until it is renewed.",
            )
            return _steps(f"Reconnect {view.provider}", steps, view.url, "Reconnect")
        case ConnectInfo():
            return _steps(view.title, view.steps, view.url, "Sign in")
        case ReminderCard() | FollowUp() | FollowUpRequest():
            return reminder_cards.parts_for(view)
    raise TypeError(f"no Teams card for {type(view).__name__}")


def render(view: View, *, refresh: Json | None = None, user_ids: Iterable[str] = ()) -> Json:
    """The Adaptive Card for `view`."""
    body, actions = render_parts(view)
    return card(body, actions, refresh=refresh, user_ids=user_ids)
