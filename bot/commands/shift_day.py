"""Shifts beside the agenda: the day's published shifts, the practitioner's own on their agenda and
their morning DM, everyone's on the practice's agenda (who is on). Read from the shift schedule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.views.models import Agenda, WorkItem
from sync.runtime.core import Core
from sync.services import shifts as service

__all__ = ["shifts_near", "with_shifts"]


def _label(start_zone: ZoneInfo, view: service.ShiftView) -> str:
    start, end = view.start.astimezone(start_zone), view.end.astimezone(start_zone)
    return f"{start:%H:%M}–{end:%H:%M}" if start.date() == end.date() else f"{start:%H:%M}–{end:%a %H:%M}"


async def with_shifts(core: Core, practice_id: int, view: Agenda, practitioner_id: int | None,
                      found: Sequence[service.ShiftView] | None = None) -> Agenda:
    """The agenda with the day's shifts added (of one practitioner when given); `found`: those shifts,
    when the agenda's own transaction read them already."""
    if found is None:
        start, end = service.day_bounds(view.day, view.timezone)
        found = await service.shifts_between(core, practice_id, start, end, practitioner_id)
    if not found:
        return view
    zone = ZoneInfo(view.timezone)
    return replace(view, shifts=tuple(WorkItem(_label(zone, s), s.assignment, s.person) for s in found))


async def shifts_near(core: Core, practice_id: int, practitioner_id: int, start: datetime, end: datetime,
                      zone_name: str) -> str:
    """The practitioner's shifts within a day of a visit, as one line ("Tue 08:00–16:00, Wed 08:00–12:00")."""
    found = await service.shifts_between(core, practice_id, start - timedelta(hours=24), end + timedelta(hours=24),
                                         practitioner_id)
    zone = ZoneInfo(zone_name)
    return ", ".join(f"{s.start.astimezone(zone):%a} {_label(zone, s)}" for s in found[:6])
