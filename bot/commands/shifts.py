"""`shifts [today|tomorrow|<date>]`: who is on shift, from the published shift schedule."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.commands.access import require_any_role
from bot.commands.grammar import ShowShifts
from bot.commands.identity import Actor
from bot.commands.present import day_label
from bot.views import Notice, View
from sync.runtime.core import Core
from sync.services import shifts as service

__all__ = ["show_shifts"]


async def show_shifts(core: Core, actor: Actor, cmd: ShowShifts) -> View:
    """The day's published shifts in the practice's zone, earliest first, one line each."""
    require_any_role(actor)
    practice_id, zone_name = await service.practice_ref(core, actor.practice_id)
    zone = ZoneInfo(zone_name)
    today = core.clock().astimezone(zone).date()
    day = cmd.day.resolve(today)
    start, end = service.day_bounds(day, zone_name)
    found = await service.shifts_between(core, practice_id, start, end)
    rel = {0: "Today", 1: "Tomorrow", -1: "Yesterday"}.get((day - today).days)
    title = f"On shift · {rel + ', ' if rel else ''}{day_label(day)}"
    if not found:
        return Notice("No published shifts that day. Admins import the schedule with `clinicbot shifts import FILE`.",
                      title=title)
    lines = []
    for shift in found:
        s, e = shift.start.astimezone(zone), shift.end.astimezone(zone)
        ends = f"{e:%H:%M}" if e.date() == s.date() else f"{e:%a %H:%M}"
        lines.append(f"{s:%H:%M}-{ends}  {shift.person} · {shift.assignment}")
    return Notice("\n".join(lines), title=title)
