"""`shift-target [outlook|teams|both] [team <team id>] [as <owner UPN>]`: where published shifts go.

`shift-target` shows it (staff); `shift-target teams team 0f3c...-... as lee@clinic.example` publishes
the practice's shift schedule to that team's Microsoft Teams Shifts schedule, acting as that team
owner (Graph's MS-APP-ACTS-AS); `shift-target both` writes Outlook calendars and Teams Shifts;
`shift-target outlook` goes back to Outlook only. Leaving a target removes what clinicbot published
there at the next publish. Admins only change it, audited with the chat user (or CLI admin) as actor.
The CLI's `clinicbot shifts target` reads the same words with the same parser.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.commands.access import require_admin, require_staff
from bot.commands.errors import ParseError
from bot.commands.identity import Actor
from bot.views import Notice, View
from sync.runtime.core import Core
from sync.services import shifts as service

__all__ = ["EXAMPLE", "SetShiftTarget", "parse_shift_target", "shift_target"]

EXAMPLE = "shift-target teams team 0f3c6a1e-2b4d-4c8e-9a7f-1d2e3f4a5b6c as lee@clinic.example"


@dataclass(frozen=True, slots=True)
class SetShiftTarget:
    """`shift-target`: show; with a target: set it (and the team, and who the app acts as there)."""

    target: str | None = None
    team_id: str | None = None
    acts_as: str | None = None


def parse_shift_target(args: list[str], rest: str = "") -> SetShiftTarget:
    if not args:
        return SetShiftTarget()
    target = args[0].lower()
    if target not in service.TARGETS:
        raise ParseError(f"{args[0]!r} is not a target; say outlook, teams or both", EXAMPLE)
    team_id = acts_as = None
    words = args[1:]
    while words:
        key = words[0].lower()
        if key not in ("team", "as") or len(words) < 2:
            raise ParseError(f"{' '.join(words)!r}: after the target say `team <team id>` and `as <owner UPN>`",
                             EXAMPLE)
        if key == "team":
            team_id = words[1]
        else:
            acts_as = words[1]
        words = words[2:]
    return SetShiftTarget(target, team_id, acts_as)


async def shift_target(core: Core, actor: Actor, cmd: SetShiftTarget) -> View:
    """Show where shifts are published, or (admins) choose it."""
    if cmd.target is None:
        require_staff(actor, "see where shifts are published")
        found = await service.shift_target(core, actor.practice_id)
        return Notice(found.sentence() + " Admins change it with `shift-target outlook|teams|both`.",
                      title="Shift publishing")
    require_admin(actor, "change where shifts are published")
    before, after = await service.set_shift_target(core, actor.practice_id, cmd.target, actor=actor.audit_name,
                                                   team_id=cmd.team_id, acts_as=cmd.acts_as)
    text = after.sentence()
    if before.teams and not after.teams:
        text += " The shifts clinicbot put in Teams Shifts are removed at the next publish."
    if before.outlook and not after.outlook:
        text += " The shift events clinicbot put in Outlook calendars are removed at the next publish."
    return Notice(text + " It takes effect at the next publish (`shifts publish`, or within 5 minutes).",
                  title="Shift publishing")
