"""Work calendars beside the agenda: the day's events of calendars with the `work` role, shown apart
from the appointments, each with a Track button (Untrack once tracked). They are read live by the
service and only rendered: nothing is kept until someone tracks one (sync.services.tracked_events)."""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

from bot.commands.access import Forbidden, require_any_role
from bot.commands.actions import TrackEvent, UntrackEvent
from bot.commands.grammar import Track, Untrack
from bot.commands.identity import Actor
from bot.commands.present import moment_label
from bot.views import Notice, View
from bot.views.models import Agenda, WorkItem
from sync.runtime.core import Core
from sync.services import tracked_events
from sync.services.work_events import WorkCalendars, WorkEvent, work_day

__all__ = ["track", "tracking_limit", "untrack", "with_work_events"]


def _label(event: WorkEvent, tz: str) -> str:
    if event.all_day:
        return "all day"
    zone = ZoneInfo(tz)
    start, end = event.start.astimezone(zone), event.end.astimezone(zone)
    return f"{start:%H:%M}–{end:%H:%M}" if start.date() == end.date() else f"{start:%H:%M}–{end:%a %H:%M}"


def _may_track(actor: Actor, owner: int | None) -> bool:
    return actor.is_staff or (actor.practitioner_id is not None and owner == actor.practitioner_id)


def _item(actor: Actor, event: WorkEvent, view: Agenda) -> WorkItem:
    actions: tuple[TrackEvent | UntrackEvent, ...] = ()
    if _may_track(actor, event.practitioner_id):
        actions = (UntrackEvent(event.ref),) if event.tracked else (TrackEvent(event.ref, view.day),)
    return WorkItem(_label(event, view.timezone), event.title or "(no title)", event.person, event.ref,
                    event.tracked, actions)


async def with_work_events(core: Core, actor: Actor, view: Agenda, practitioner_id: int | None,
                           calendars: WorkCalendars | None = None) -> Agenda:
    """The agenda with the day's work-calendar events added apart (of one practitioner when given);
    `calendars`: the work calendars already loaded with the agenda (else they are looked up)."""
    found = await work_day(core, actor.practice_id, view.day, view.timezone, practitioner_id, calendars)
    if not found.events and not found.unavailable:
        return view
    items = tuple(_item(actor, e, view) for e in found.events)
    return replace(view, work=items, work_unavailable=found.unavailable)


def tracking_limit(actor: Actor) -> int | None:
    """Staff track anyone's events; a practitioner only their own calendar's."""
    require_any_role(actor)
    if actor.is_staff:
        return None
    if actor.practitioner_id is None:
        raise Forbidden("you are not linked to a practitioner; ask an admin: "
                        "`role grant practitioner @you @your-handle`")
    return actor.practitioner_id


async def track(core: Core, actor: Actor, cmd: Track | TrackEvent) -> View:
    """`track W3-1a2b3c4d` or the Track button."""
    limit = tracking_limit(actor)
    tz = await _zone(core, actor)
    done = await tracked_events.track(core, actor.practice_id, cmd.event, actor=actor.audit_name,
                                      day=cmd.day if isinstance(cmd, TrackEvent) else None, tz=tz,
                                      only_practitioner=limit)
    when = moment_label(done.start, tz)
    if not done.new:
        return Notice(f"{cmd.event} is tracked already as {done.ref} ({when}).", "Tracked")
    return Notice(f"{cmd.event} is now tracked as {done.ref} ({when}): it shows in the agenda, gets "
                  f"reminders, and a move of {done.ref} here moves the event in its calendar. "
                  f"`untrack {done.ref}` stops that.", "Tracked")


async def untrack(core: Core, actor: Actor, cmd: Untrack | UntrackEvent) -> View:
    """`untrack W3-1a2b3c4d` / `untrack A-12` or the Untrack button."""
    limit = tracking_limit(actor)
    done = await tracked_events.untrack(core, actor.practice_id, cmd.event, actor=actor.audit_name,
                                        only_practitioner=limit)
    return Notice(f"{done.ref} is no longer tracked; the event stays in its work calendar "
                  f"(`track {done.event}` tracks it again).", "Untracked")


async def _zone(core: Core, actor: Actor) -> str:
    return await tracked_events.practice_zone(core, actor.practice_id)
