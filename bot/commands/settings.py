"""Handlers of the settings commands (bot.commands.settings_grammar): admins only, each change audited
by the service it calls (sync.services.settings)."""

from __future__ import annotations

from bot.commands.access import require_admin
from bot.commands.identity import Actor
from bot.commands.settings_grammar import SetCalendarLook, SetFeedPattern, SetOptOut, SetWindow
from bot.views import Notice, View
from sync.runtime.core import Core
from sync.services import settings

__all__ = ["calendar_look", "feed_pattern", "opt_out", "window"]


async def opt_out(core: Core, actor: Actor, cmd: SetOptOut) -> View:
    require_admin(actor, "opt practitioners out or in")
    done = await settings.set_opt_out(core, actor.practice_id, cmd.practitioner, opted_out=cmd.opted_out,
                                      actor=actor.audit_name)
    if cmd.opted_out:
        text = f"{done.name} is opted out: no reminders or agenda messages, and their bookings are not copied."
    else:
        text = f"{done.name} is opted in again: reminders, agenda messages and copies resume."
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
