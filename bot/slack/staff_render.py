"""The staff card -> Block Kit: one line per unmapped booking-platform staff member, with a practitioner
select beside it; choosing one sends the mapping at once (its option value is the encoded action).

Kept apart from bot.slack.render (which dispatches here); imports nothing of it, so no cycle.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from bot.commands.actions import MapStaffMember, encode
from bot.views import StaffCard, StaffMember

__all__ = ["SELECT_ACTION", "blocks_for"]

#: The select's action id (the listener decodes its chosen option's value).
SELECT_ACTION = "clinic.staff_map"
MAX_OPTIONS = 100  # Slack's cap on a select's options
MAX_MEMBERS = 20  # two blocks each, under the 50-block cap with the header and mappings


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _member(view: StaffCard, member: StaffMember) -> SectionBlock:
    waiting = f"{member.waiting} booking{'s' if member.waiting != 1 else ''} waiting" if member.waiting \
        else "no bookings yet"
    line = f"*{_esc(member.name)}* on {_esc(member.platform)} · `{_esc(_clip(member.external_id, 80))}`\n{waiting}"
    options = [Option(text=_clip(name, 75), value=encode(MapStaffMember(member.calendar_id, pid))[1])
               for pid, name in view.practitioners[:MAX_OPTIONS]]
    accessory = StaticSelectElement(placeholder=PlainTextObject(text="Map to…"), action_id=SELECT_ACTION,
                                    options=options) if options else None
    return SectionBlock(block_id=f"staff:{member.calendar_id}", text=MarkdownTextObject(text=_clip(line, 3000)),
                        accessory=accessory)


def blocks_for(view: StaffCard) -> tuple[str, list[dict[str, Any]]]:
    """Fallback text and blocks."""
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text="Staff on booking platforms"))]
    if view.notice:
        done = f":white_check_mark: {_esc(_clip(view.notice, 2900))}"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=done)))
    if view.mappings:
        listing = "\n".join(f"• {_esc(m)}" for m in view.mappings)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(listing, 3000))))
    if view.unmapped:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text="Not mapped yet: their bookings are kept without a practitioner. Choose who each one is.")]))
        blocks += [_member(view, m) for m in view.unmapped[:MAX_MEMBERS]]
        if not view.practitioners:
            blocks.append(ContextBlock(elements=[MarkdownTextObject(
                text="There are no practitioners to choose from yet: add them first (`clinicbot practitioner add`).")]))
    elif not view.mappings:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text="No booking-platform staff yet: `connect square`, `connect acuity` or `connect calendly`.")))
    else:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="Every staff member is mapped.")]))
    text = view.notice or (f"{len(view.unmapped)} staff member(s) to map" if view.unmapped else "Staff mappings")
    return _clip(text, 300), [b.to_dict() for b in blocks]
