"""The shift cards -> Adaptive Card: the publish summary with its "Map people" button, and the mapping card.

The mapping card has two inputs, both for the first person who gets nothing or is unknown to
Microsoft 365 (one form a card, so input ids stay unique): a practitioner picker ("p") and a
sign-in box ("u", Input.Text, checked against Microsoft 365 on the server). Every other choice is a
button of its own that sends no inputs (identity field, the four flags per assignment). The card
updates in place after each choice, so the next person comes up in turn.
"""

from __future__ import annotations

from bot.teams.card_parts import Json, action_button, text
from bot.views import ShiftMappingCard, ShiftPublishCard

__all__ = ["SHIFT_VIEWS", "parts_for"]

SHIFT_VIEWS = (ShiftPublishCard, ShiftMappingCard)
MAX_NAMES = 30


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names[:MAX_NAMES]) + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def _no_inputs(button: Json) -> Json:
    """A button that submits none of the card's inputs (the picker is not required for it)."""
    button["associatedInputs"] = "none"
    button["fallback"]["associatedInputs"] = "none"
    return button


def _publish(view: ShiftPublishCard) -> tuple[list[Json], list[Json]]:
    body: list[Json] = [text(view.title, size="Medium", weight="Bolder")]
    body += [text(line, spacing="Small") for line in view.lines]
    if view.unmapped:
        body.append(text(f"No Microsoft sign-in in {view.identity_field}: {_names(view.unmapped)}"))
    if view.unknown:
        body.append(text(f"Not known to Microsoft 365: {_names(view.unknown)}"))
    actions = [action_button(view.map_action, "Map people", style="positive")] if view.map_action else []
    return body, actions


def _mapping(view: ShiftMappingCard) -> tuple[list[Json], list[Json]]:
    body: list[Json] = [text("Who gets the shifts", size="Medium", weight="Bolder")]
    if view.problem:
        body.append(text(view.problem, color="Attention", weight="Bolder"))
    if view.second_writers:
        body.append({"type": "Container", "style": "warning", "items": [
            text("Another writer already puts these shifts in Outlook", weight="Bolder"),
            *(text(line, spacing="Small") for line in view.second_writers)]})
    if view.notice:
        body.append(text(view.notice, color="Good", weight="Bolder"))
    body.append(text("Microsoft sign-ins are read from the scheduler's field:", spacing="Medium"))
    body.append({"type": "ActionSet", "actions": [
        _no_inputs(action_button(action, label, style="positive" if getattr(action, "field", "") ==
                                 view.identity_field else None)) for label, action in view.fields]})
    first = next((i for i, p in enumerate(view.people) if p.how == "none" or p.unknown), None)
    box = view.upn_boxes[first] if first is not None and first < len(view.upn_boxes) else None
    for index, person in enumerate(view.people):
        where = ("no sign-in: gets nothing" if person.how == "none" else
                 f"→ {person.mailbox}" + (" (mapped here)" if person.how == "mapped" else "")
                 + (" · not known to Microsoft 365" if person.unknown else ""))
        body.append(text(f"{person.name} · {person.shifts} shift{'s' if person.shifts != 1 else ''} · {where}",
                         weight="Bolder" if index == first else "Default", spacing="Small"))
        if index == first and view.choices[index]:
            choices = view.choices[index]
            body.append({"type": "Input.ChoiceSet", "id": "p", "label": f"Send {person.name}'s shifts to",
                         "style": "compact",
                         "choices": [{"title": label, "value": str(getattr(action, "practitioner_id", ""))}
                                     for label, action in choices[:100]]})
            mapping = action_button(choices[0][1], "Map", style="positive")
            mapping["data"].pop("p", None)  # the picker's choice is the practitioner
            mapping["fallback"]["data"].pop("p", None)
            body.append({"type": "ActionSet", "actions": [mapping]})
        if index == first and box is not None:
            body.append({"type": "Input.Text", "id": "u", "label": f"Or send {person.name}'s shifts to the sign-in",
                         "placeholder": "name@clinic.example", "style": "Email", "maxLength": 320,
                         "regex": r"^[^@\s]+@[^@\s]+$", "errorMessage": "a Microsoft sign-in: name@domain"})
            upn = action_button(box, "Map to sign-in", style="positive")
            upn["data"].pop("u", None)  # the box's text is the sign-in
            upn["fallback"]["data"].pop("u", None)
            body.append({"type": "ActionSet", "actions": [upn]})
    if not view.people:
        body.append(text("Nobody is on a future published shift.", isSubtle=True))
    for assignment, flags in view.assignments:
        body.append(text(assignment, weight="Bolder", spacing="Medium"))
        body.append({"type": "ActionSet", "actions": [
            _no_inputs(action_button(action, f"{label}: {'on' if on else 'off'}", style="positive" if on else None))
            for label, on, action in flags]})
    body.append(text("Someone without a sign-in, or with a wrong one: type their sign-in or pick a practitioner "
                     "above, or clinicbot shifts map \"Name\" --upn name@clinic.", isSubtle=True))
    return body, []


def parts_for(view: ShiftPublishCard | ShiftMappingCard) -> tuple[list[Json], list[Json]]:
    """(body, actions) of the card."""
    return _publish(view) if isinstance(view, ShiftPublishCard) else _mapping(view)
