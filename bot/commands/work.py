"""Work calendars beside the agenda: the day's events of calendars with the `work` role, shown apart
from the appointments. They are read live by the service and only rendered: nothing is kept."""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

from bot.commands.identity import Actor
from bot.views.models import Agenda, WorkItem
from sync.runtime.core import Core
from sync.services.work_events import WorkEvent, work_day

__all__ = ["with_work_events"]


def _label(event: WorkEvent, tz: str) -> str:
    if event.all_day:
        return "all day"
    zone = ZoneInfo(tz)
    start, end = event.start.astimezone(zone), event.end.astimezone(zone)
    return f"{start:%H:%M}–{end:%H:%M}" if start.date() == end.date() else f"{start:%H:%M}–{end:%a %H:%M}"


async def with_work_events(core: Core, actor: Actor, view: Agenda, practitioner_id: int | None) -> Agenda:
    """The agenda with the day's work-calendar events added apart (of one practitioner when given)."""
    found = await work_day(core, actor.practice_id, view.day, view.timezone, practitioner_id)
    if not found.events and not found.unavailable:
        return view
    items = tuple(WorkItem(_label(e, view.timezone), e.title or "(no title)", e.person) for e in found.events)
    return replace(view, work=items, work_unavailable=found.unavailable)
