"""Handlers of the settings commands (bot.commands.settings_grammar): admins only, each change audited
by the service it calls (sync.services.settings)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.commands.access import require_admin, require_staff
from bot.commands.identity import Actor
from bot.commands.settings_grammar import (
    AddLocation,
    FindSlots,
    SetCalendarLook,
    SetFeedPattern,
    SetOptOut,
    SetWindow,
    ShowLocations,
)
from bot.views import Notice, View
from sync.runtime.core import Core
from sync.services import locations, settings, slots

__all__ = ["add_location", "calendar_look", "feed_pattern", "find_slots", "opt_out", "show_locations", "window"]


async def opt_out(core: Core, actor: Actor, cmd: SetOptOut) -> View:
    require_admin(actor, "opt practitioners out or in")
    done = await settings.set_opt_out(core, actor.practice_id, cmd.practitioner, opted_out=cmd.opted_out,
                                      actor=actor.audit_name)
    if cmd.opted_out:
        text = (f"{done.name} is opted out: no reminders or agenda messages, and practice-wide calendar "
                "connections stop reading their calendar.")
    else:
        text = f"{done.name} is opted in again: reminders, agenda messages and practice-wide sync resume."
    if not done.changed:
        text = f"{done.name} was already opted {'out' if cmd.opted_out else 'in'}; nothing changed."
    return Notice(text, title="Opted out" if cmd.opted_out else "Opted in")


async def calendar_look(core: Core, actor: Actor, cmd: SetCalendarLook) -> View:
    require_admin(actor, "change how a calendar's copies look")
    done = await settings.calendar_settings(core, actor.practice_id, cmd.calendar, projection=cmd.projection,
                                            show_as_free=cmd.show_as_free, actor=actor.audit_name)
    look = f"projection {done.projection}, shown as {'free' if done.show_as_free else 'busy'}"
    if not done.changed:
        return Notice(f"{done.name or 'That calendar'} already has {look}; nothing changed.")
    text = f"{done.name or 'The calendar'} now has {look}."
    if done.rewritten:
        text += f" {done.rewritten} cop{'y is' if done.rewritten == 1 else 'ies are'} being rewritten."
    elif done.role != "mirror":
        text += f" It is a {done.role} calendar: this applies once it receives copies (role mirror)."
    return Notice(text, title="Calendar changed")


async def window(core: Core, actor: Actor, cmd: SetWindow) -> View:
    require_admin(actor, "change a connection's sync window")
    done = await settings.set_window(core, actor.practice_id, cmd.connection, days_back=cmd.days_back,
                                     days_ahead=cmd.days_ahead, actor=actor.audit_name)
    span = f"{done.days_back} days back and {done.days_ahead} ahead"
    if not done.changed:
        return Notice(f"{done.label} already syncs {span}; nothing changed.")
    return Notice(f"{done.label} now syncs {span}; its next sync reads it in full.", title="Sync window")


async def feed_pattern(core: Core, actor: Actor, cmd: SetFeedPattern) -> View:
    require_admin(actor, "change how a feed is read")
    done = await settings.set_option(core, actor.practice_id, cmd.connection, "summary_pattern", cmd.pattern,
                                     actor=actor.audit_name)
    if not done.changed:
        return Notice(f"{done.label} is already read with the {done.value} pattern; nothing changed.")
    return Notice(f"{done.label} is now read with the {done.value} pattern; its next sync reads it again.",
                  title="Feed pattern")


async def show_locations(core: Core, actor: Actor, cmd: ShowLocations) -> View:
    require_staff(actor, "see the locations")
    rows = await locations.list_locations(core, actor.practice_id)
    if not rows:
        return Notice("No locations yet; an admin adds one with `location add Northside`.", title="Locations")
    lines = [r.name + (f" ({r.address})" if r.address else "") + (f", also {', '.join(r.refs)}" if r.refs else "")
             for r in rows]
    return Notice("\n".join(lines), title="Locations")


async def add_location(core: Core, actor: Actor, cmd: AddLocation) -> View:
    require_admin(actor, "add locations")
    row = await locations.add_location(core, actor.practice_id, cmd.name, actor=actor.audit_name)
    return Notice(f"{row.name} is a location: bookings whose platform names it are placed there, and "
                  f"`today at {row.name}` shows its appointments.", title="Location added")


async def find_slots(core: Core, actor: Actor, cmd: FindSlots) -> View:
    require_staff(actor, "search free slots")
    day = cmd.day.resolve(await slots.practice_today(core, actor.practice_id))
    found = await slots.find_slots(core, actor.practice_id, day, part=cmd.part, service=cmd.service,
                                   practitioner=cmd.practitioner, location=cmd.location)
    zone = ZoneInfo(found.timezone)
    what = " ".join(filter(None, (cmd.service, f"({found.minutes} min)")))
    title = f"Free {cmd.part or 'slots'} on {day:%a %-d %b}" + (f" at {found.location}" if found.location else "")
    lines = [f"{p.name}: " + ", ".join(f"{t.astimezone(zone):%H:%M}" for t in p.starts) for p in found.found]
    if not lines:
        lines = ["No free slot then; try another day or part of the day."]
    text = "\n".join([f"For {what}:", *lines, *(f"({n})" for n in found.notes)])
    return Notice(text, title=title)
