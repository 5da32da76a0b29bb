"""The shift cards: the publishing admin's summary, and who-gets-which-shifts (the mapping and the flags).

The summary answers an upload (Teams, Slack) with what was read and what Outlook got, the people
who got nothing and why, and a "Map people" button. The mapping card lets an admin choose the
identity field, send a person's shifts to a practitioner, and set each assignment's four flags;
every choice goes through the services (audited, in one transaction) and the card comes back updated.
"""

from __future__ import annotations

from bot.commands.access import require_admin
from bot.commands.actions import MapShiftPerson, OpenShiftMapping, SetShiftField, SetShiftFlag
from bot.commands.errors import ParseError
from bot.commands.identity import Actor
from bot.views import ShiftMappingCard, ShiftPersonLine, ShiftPublishCard, View
from sync.contract.shifts import IDENTITY_FIELDS
from sync.runtime.core import Core
from sync.services import shift_mapping
from sync.services import shifts as service

__all__ = ["FLAG_LABELS", "map_person", "mapping_card", "publish_card", "set_field", "set_flag"]

#: The four flags, as the scheduler's own Outlook integration names them.
FLAG_LABELS = (("send", "Send to Outlook"), ("notes", "Schedule notes"), ("info", "Assignment info"),
               ("free", "Show as free"))
FIELD_LABELS = {"unique_id": "UniqueID", "custom1": "Custom1", "custom2": "Custom2", "custom3": "Custom3",
                "custom4": "Custom4"}
MAX_PEOPLE = 15
MAX_ASSIGNMENTS = 8
_EXAMPLE = "clinicbot shifts map \"Cy Roe\" --upn cy@clinic.example"


def publish_card(name: str, summary: service.ImportSummary, published: service.PublishSummary | None, *,
                 background: int = 0, not_published: str = "") -> ShiftPublishCard:
    """The summary of one import and its publish, for the admin who sent it."""
    lines = [f"{summary.shifts} shifts ({summary.published} published) read from {name}."]
    unknown: tuple[str, ...] = ()
    if background:
        lines.append(f"{background} changes go to Outlook in the background within "
                     f"{service.PUBLISH_EVERY_SECONDS // 60} minutes; `clinicbot shifts publish` does it at once.")
        title = "Shift schedule stored"
    elif not_published:
        lines.append(f"The schedule is stored, but not published: {not_published}")
        title = "Shift schedule"
    else:
        assert published is not None
        lines.append(f"Outlook: {published.created} added, {published.updated} changed, {published.deleted} removed"
                     + (f", {published.failed} failed (they stay pending: `clinicbot shifts publish`)"
                        if published.failed else "") + ".")
        unknown = tuple(published.unknown_people)
        title = "Shift schedule published"
    field = FIELD_LABELS.get(summary.identity_field, summary.identity_field)
    if summary.unmapped:
        lines.append(f"No Microsoft sign-in in {field} for {len(summary.unmapped)} "
                     f"{'person' if len(summary.unmapped) == 1 else 'people'}, so nothing was sent to them.")
    if unknown:
        lines.append(f"Not known to Microsoft 365: {len(unknown)}; their shifts wait until they are mapped.")
    return ShiftPublishCard(
        title=title, lines=tuple(lines), unmapped=tuple(summary.unmapped), unknown=unknown,
        identity_field=field, map_action=OpenShiftMapping() if summary.unmapped or unknown else None,
    )


async def mapping_card(core: Core, actor: Actor, notice: str = "") -> ShiftMappingCard:
    """Who gets which shifts, as it stands (admins only)."""
    require_admin(actor, "map shift schedule people")
    state = await shift_mapping.mapping_state(core, actor.practice_id)
    people = state.people[:MAX_PEOPLE]
    return ShiftMappingCard(
        identity_field=state.identity_field,
        fields=tuple((FIELD_LABELS[f], SetShiftField(f)) for f in IDENTITY_FIELDS),
        people=tuple(ShiftPersonLine(p.name, p.mailbox, p.how, p.unknown, p.shifts) for p in people),
        choices=tuple(tuple((pname, MapShiftPerson(p.name, pid)) for pid, pname in state.practitioners)
                      for p in people),
        assignments=tuple(
            (name, tuple((label, flags.as_dict()[key], SetShiftFlag(name, key, "off" if flags.as_dict()[key]
                                                                    else "on"))
                         for key, label in FLAG_LABELS))
            for name, flags in state.assignments[:MAX_ASSIGNMENTS]),
        notice=notice or (f"{len(state.people) - MAX_PEOPLE} more people: `clinicbot shifts people`"
                          if len(state.people) > MAX_PEOPLE else ""),
    )


def _publish_hint(changed: int) -> str:
    if not changed:
        return "no shift changes."
    return (f"{changed} future shift{'s' if changed != 1 else ''} change; they go to Outlook within "
            f"{service.PUBLISH_EVERY_SECONDS // 60} minutes.")


async def set_field(core: Core, actor: Actor, action: SetShiftField) -> View:
    require_admin(actor, "choose the shift schedule's identity field")
    changed = await service.set_identity_field(core, actor.practice_id, action.field, actor=actor.audit_name)
    label = FIELD_LABELS.get(action.field, action.field)
    return await mapping_card(core, actor, f"Microsoft sign-ins are read from {label}: {_publish_hint(changed)}")


async def map_person(core: Core, actor: Actor, action: MapShiftPerson) -> View:
    require_admin(actor, "map shift schedule people")
    if action.practitioner_id is None:
        raise ParseError(f"choose whose calendar gets {action.person}'s shifts", _EXAMPLE)
    target, changed = await shift_mapping.map_person(core, actor.practice_id, action.person,
                                                     actor=actor.audit_name, practitioner_id=action.practitioner_id)
    return await mapping_card(core, actor, f"{action.person}'s shifts go to {target}: {_publish_hint(changed)}")


async def set_flag(core: Core, actor: Actor, action: SetShiftFlag) -> View:
    require_admin(actor, "set assignment flags")
    labels = dict(FLAG_LABELS)
    if action.flag not in labels or action.state not in ("on", "off"):
        raise ParseError("this flag button is not valid; open the card again", "shifts today")
    _flags, changed = await service.set_flags(core, actor.practice_id, action.assignment, actor=actor.audit_name,
                                              **{action.flag: action.state == "on"})
    return await mapping_card(core, actor, f"{action.assignment}: {labels[action.flag]} {action.state}; "
                                           f"{_publish_hint(changed)}")
