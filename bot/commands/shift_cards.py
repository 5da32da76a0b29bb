"""The shift cards: the publishing admin's summary, and who-gets-which-shifts (the mapping and the flags).

The summary answers an upload (Teams, Slack) with what was read and what Outlook got, the people
who got nothing and why, and a "Map people" button. The mapping card lets an admin choose the
identity field, send a person's shifts to a practitioner, and set each assignment's four flags;
every choice goes through the services (audited, in one transaction) and the card comes back updated.
"""

from __future__ import annotations

from bot.commands.access import require_admin
from bot.commands.actions import MapShiftPerson, MapShiftUpn, OpenShiftMapping, SetShiftField, SetShiftFlag
from bot.commands.errors import ParseError
from bot.commands.identity import Actor
from bot.commands.present import moment_label
from bot.views import ShiftMappingCard, ShiftPersonLine, ShiftPublishCard, View
from sync.contract.shifts import IDENTITY_FIELDS
from sync.runtime.core import Core
from sync.services import shift_mapping
from sync.services import shifts as service
from sync.services.errors import ServiceError

__all__ = ["FLAG_LABELS", "map_person", "map_upn", "mapping_card", "publish_card", "second_writer_lines", "set_field",
           "set_flag"]

#: The four flags, as the scheduler's own Outlook integration names them.
FLAG_LABELS = (("send", "Send to Outlook"), ("notes", "Schedule notes"), ("info", "Assignment info"),
               ("free", "Show as free"))
FIELD_LABELS = {"unique_id": "UniqueID", "custom1": "Custom1", "custom2": "Custom2", "custom3": "Custom3",
                "custom4": "Custom4"}
MAX_PEOPLE = 15
MAX_ASSIGNMENTS = 8
#: People given a sign-in box on the card (those who get nothing or whom Microsoft 365 does not know).
MAX_UPN_BOXES = 5
MAX_WRITERS = 5
_EXAMPLE = "clinicbot shifts map \"Cy Roe\" --upn cy@clinic.example"


def publish_card(name: str, summary: service.ImportSummary, published: service.PublishSummary | None, *,
                 background: int = 0, not_published: str = "", writers: tuple[str, ...] = ()) -> ShiftPublishCard:
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
        if published.teams_ran:
            lines.append(f"Teams Shifts: {published.teams_created} added, {published.teams_updated} changed, "
                         f"{published.teams_deleted} removed"
                         + (f", {published.teams_failed} failed (they stay pending)" if published.teams_failed
                            else "") + ".")
        unknown = tuple(published.unknown_people)
        title = "Shift schedule published"
    field = FIELD_LABELS.get(summary.identity_field, summary.identity_field)
    if summary.unmapped:
        lines.append(f"No Microsoft sign-in in {field} for {len(summary.unmapped)} "
                     f"{'person' if len(summary.unmapped) == 1 else 'people'}, so nothing was sent to them.")
    if unknown:
        lines.append(f"Not known to Microsoft 365: {len(unknown)}; their shifts wait until they are mapped.")
    if writers:
        lines.append("Warning: another writer already puts these shifts in Outlook.")
        lines.extend(writers)
    return ShiftPublishCard(
        title=title, lines=tuple(lines), unmapped=tuple(summary.unmapped), unknown=unknown,
        identity_field=field, map_action=OpenShiftMapping() if summary.unmapped or unknown else None,
    )


def second_writer_lines(check: service.SecondWriterCheck | None, zone: str) -> tuple[str, ...]:
    """The second-writer warning from the last bounded check: one line per calendar, then how it was checked."""
    if check is None or not check.found:
        return ()
    lines = [f"{f.person} ({f.mailbox}): {f.lookalikes} event{'s' if f.lookalikes != 1 else ''} with a shift's "
             "subject and times that clinicbot did not write" if f.where != "teams" else
             f"{f.person} ({f.mailbox}): {f.lookalikes} shift{'s' if f.lookalikes != 1 else ''} in the team's Teams "
             "Shifts schedule at a shift's times that clinicbot did not write" for f in check.found[:MAX_WRITERS]]
    if len(check.found) > MAX_WRITERS:
        lines.append(f"and {len(check.found) - MAX_WRITERS} more calendars: `clinicbot shifts check`")
    fix = [*(["turn off the scheduler's own Outlook integration for them"] if any(
               f.where != "teams" for f in check.found) else []),
           *(["remove the shifts another writer puts in Teams Shifts (or turn it off)"] if any(
               f.where == "teams" for f in check.found) else [])]
    lines.append(f"Checked {moment_label(check.at, zone)} in {check.checked} of {check.of} calendars: "
                 f"{', and '.join(fix)}, or each shift shows twice.")
    return tuple(lines)


async def mapping_card(core: Core, actor: Actor, notice: str = "", problem: str = "") -> ShiftMappingCard:
    """Who gets which shifts, as it stands (admins only).

    The second-writer warning is the last bounded check's (the periodic job, a chat upload, `doctor`):
    the card itself never waits on Graph, so a Teams invoke answers at once."""
    require_admin(actor, "map shift schedule people")
    state = await shift_mapping.mapping_state(core, actor.practice_id)
    people = state.people[:MAX_PEOPLE]
    boxes: list[MapShiftUpn | None] = []
    for p in people:
        wants = (p.how == "none" or p.unknown) and sum(b is not None for b in boxes) < MAX_UPN_BOXES
        boxes.append(MapShiftUpn(p.name, "") if wants else None)
    _pid, zone = await service.practice_ref(core, actor.practice_id)
    writers = second_writer_lines(await service.stored_second_writers(core, actor.practice_id), zone)
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
        upn_boxes=tuple(boxes), second_writers=writers, problem=problem,
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


async def map_upn(core: Core, actor: Actor, action: MapShiftUpn) -> View:
    """The sign-in box: checked for shape, then against Microsoft 365 (where Outlook is connected), audited.

    A sign-in that is not one, or one Microsoft 365 does not know, comes back on the card as the
    problem, with nothing changed."""
    require_admin(actor, "map shift schedule people")
    typed = action.upn.strip()
    if not typed:
        return await mapping_card(core, actor, problem=f"Type {action.person}'s Microsoft sign-in (name@domain).")
    try:
        target, changed = await shift_mapping.map_person(core, actor.practice_id, action.person,
                                                         actor=actor.audit_name, upn=typed, check=True)
    except ServiceError as exc:
        return await mapping_card(core, actor, problem=f"{action.person}: {exc}")
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
