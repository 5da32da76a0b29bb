"""The shift cards -> Block Kit: the publish summary with its "Map people" button, and the mapping card
(identity field select, a practitioner select per person, the four flag buttons per assignment).

Kept apart from bot.slack.render (which dispatches here); imports nothing of it, so no cycle.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from bot.commands.actions import Action, encode
from bot.slack.elements import ACTION_PREFIX, INPUT_PREFIX, MAX_BLOCK_ID, clip, esc
from bot.views import ShiftMappingCard, ShiftPersonLine, ShiftPublishCard

__all__ = ["SHIFT_VIEWS", "blocks_for"]

SHIFT_VIEWS = (ShiftPublishCard, ShiftMappingCard)
MAX_OPTIONS = 100  # Slack's cap on a select's options
MAX_VALUE = 150  # Slack's cap on an option's value
MAX_NAMES = 30


def _names(names: tuple[str, ...]) -> str:
    shown = ", ".join(esc(n) for n in names[:MAX_NAMES])
    return shown + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def _button(action: Action, label: str, style: str | None = None) -> ButtonElement:
    action_id, value = encode(action)
    return ButtonElement(text=clip(label, 75), action_id=ACTION_PREFIX + action_id, value=value, style=style)


def _select(options: list[tuple[str, Action]], placeholder: str) -> StaticSelectElement | None:
    """A select whose options' values are encoded actions of one kind (those short enough for Slack)."""
    usable = [(label, encode(action)) for label, action in options]
    usable = [(label, wire) for label, wire in usable if len(wire[1]) <= MAX_VALUE][:MAX_OPTIONS]
    if not usable:
        return None
    return StaticSelectElement(placeholder=PlainTextObject(text=placeholder), action_id=ACTION_PREFIX + usable[0][1][0],
                               options=[Option(text=clip(label, 75), value=wire[1]) for label, wire in usable])


def _publish(view: ShiftPublishCard) -> list[Block]:
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=clip(view.title, 150))),
                           SectionBlock(text=MarkdownTextObject(text=clip("\n".join(esc(x) for x in view.lines),
                                                                          3000)))]
    if view.unmapped:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=clip(f"*No Microsoft sign-in in {esc(view.identity_field)}:* {_names(view.unmapped)}", 3000))))
    if view.unknown:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=clip(f"*Not known to Microsoft 365:* {_names(view.unknown)}", 3000))))
    if view.map_action is not None:
        blocks.append(ActionsBlock(block_id="shifts:publish", elements=[_button(view.map_action, "Map people",
                                                                                 "primary")]))
    return blocks


def _where(person: ShiftPersonLine) -> str:
    if person.how == "none":
        return "no sign-in: gets nothing"
    where = f"→ {esc(person.mailbox)}" + (" (mapped here)" if person.how == "mapped" else "")
    return where + (" · *not known to Microsoft 365*" if person.unknown else "")


def _upn_box(action: Action, person: str) -> InputBlock | None:
    """A sign-in box that sends `action` with the typed text as its "u" when Enter is pressed."""
    action_id, value = encode(action)
    block_id = f"{INPUT_PREFIX}u:{value}"
    if len(block_id) > MAX_BLOCK_ID:
        return None
    return InputBlock(
        block_id=block_id, dispatch_action=True, optional=True,
        label=PlainTextObject(text=clip(f"{person}'s Microsoft sign-in", 150)),
        hint=PlainTextObject(text="name@domain, then Enter; checked with Microsoft 365"),
        element=PlainTextInputElement(action_id=ACTION_PREFIX + action_id, placeholder="name@clinic.example",
                                      max_length=320,
                                      dispatch_action_config={"trigger_actions_on": ["on_enter_pressed"]}),
    )


def _mapping(view: ShiftMappingCard) -> list[Block]:
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text="Who gets the shifts"))]
    if view.problem:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(f":warning: {esc(view.problem)}", 3000))))
    if view.second_writers:
        blocks.append(SectionBlock(block_id="shifts:writers", text=MarkdownTextObject(text=clip(
            ":warning: *Another writer already puts these shifts in Outlook*\n"
            + "\n".join(esc(x) for x in view.second_writers), 3000))))
    if view.notice:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(f":white_check_mark: {esc(view.notice)}",
                                                                     3000))))
    field = next((label for label, action in view.fields if getattr(action, "field", "") == view.identity_field),
                 view.identity_field)
    blocks.append(SectionBlock(
        block_id="shifts:field",
        text=MarkdownTextObject(text=f"Microsoft sign-ins are read from the scheduler's *{esc(field)}* field."),
        accessory=_select(list(view.fields), "Read them from…"),
    ))
    for index, (person, choices) in enumerate(zip(view.people, view.choices, strict=True)):
        line = f"*{esc(person.name)}* · {person.shifts} shift{'s' if person.shifts != 1 else ''} · {_where(person)}"
        blocks.append(SectionBlock(block_id=f"shifts:person:{index}", text=MarkdownTextObject(text=clip(line, 3000)),
                                   accessory=_select(list(choices), "Send to…")))
        box = view.upn_boxes[index] if index < len(view.upn_boxes) else None
        if box is not None and (made := _upn_box(box, person.name)) is not None:
            blocks.append(made)
    if not view.people:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="Nobody is on a future published shift.")]))
    for index, (assignment, flags) in enumerate(view.assignments):
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(f"*{esc(assignment)}*", 3000))))
        blocks.append(ActionsBlock(block_id=f"shifts:flags:{index}", elements=[
            _button(action, f"{label}: {'on' if on else 'off'}", "primary" if on else None)
            for label, on, action in flags]))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(
        text="Someone without a sign-in, or with a wrong one: type their sign-in above, pick a practitioner, or "
             "`clinicbot shifts map \"Name\" --upn name@clinic`.")]))
    return blocks[:50]


def blocks_for(view: ShiftPublishCard | ShiftMappingCard) -> tuple[str, list[dict[str, Any]]]:
    """Fallback text and blocks."""
    if isinstance(view, ShiftPublishCard):
        return clip(" ".join(view.lines), 300), [b.to_dict() for b in _publish(view)]
    return clip(view.notice or "Who gets the shifts", 300), [b.to_dict() for b in _mapping(view)]
