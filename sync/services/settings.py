"""Settings an admin changes after creation, from chat and the CLI alike; each change audited.

- a practitioner's opt-out (no reminders or agenda DMs; practice-wide connections stop addressing them);
- a calendar's privacy projection and "show as free": the copies already on that calendar are
  written again through the outbox, so a calendar switched to `busy` stops showing initials;
- a connection's sync window (days back and ahead): its calendars are read in full once, so what
  a wider window newly covers arrives;
- a connection's options its integration declares (an ICS feed's summary pattern, Google's
  send_updates): kept in its config, and its calendars read in full once, so bookings already
  imported are read again the new way.
A change to the value already set changes nothing and writes no audit row.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import ProviderError
from sync.engine.mirror_ops import enqueue, op_row
from sync.engine.projection import PROJECTIONS
from sync.integrations import registry
from sync.runtime.core import Core
from sync.services.errors import Invalid, NotFound
from sync.services.practices import find_practitioner
from sync.store import audit
from sync.store.model import Appointment, Calendar, Connection, Link

__all__ = [
    "MAX_DAYS_AHEAD",
    "MAX_DAYS_BACK",
    "CalendarSettings",
    "OptOut",
    "OptionSettings",
    "SettingError",
    "WindowSettings",
    "calendar_settings",
    "find_calendar",
    "find_connection",
    "set_opt_out",
    "set_option",
    "set_window",
]

MAX_DAYS_BACK = 3650
MAX_DAYS_AHEAD = 3650


class SettingError(Invalid):
    """A setting that cannot be changed as asked; the message says why and what to type."""


@dataclass(frozen=True, slots=True)
class OptOut:
    practitioner_id: int
    name: str
    opted_out: bool
    changed: bool


@dataclass(frozen=True, slots=True)
class CalendarSettings:
    calendar_id: int
    name: str
    role: str
    projection: str
    show_as_free: bool
    changed: bool
    #: Copies queued to be written again with the new look.
    rewritten: int = 0


@dataclass(frozen=True, slots=True)
class WindowSettings:
    connection_id: int
    label: str
    days_back: int
    days_ahead: int
    changed: bool


async def set_opt_out(core: Core, practice_id: int, ref: str, *, opted_out: bool, actor: str) -> OptOut:
    """Opt a practitioner out of (or back into) sync and reminders; audited as practitioner.opt_out/opt_in."""
    async with core.store.session() as s:
        found = await find_practitioner(s, practice_id, ref)
        if found is None:
            raise NotFound(f"there is no practitioner {ref!r}; `clinicbot practitioner list` shows them")
        changed = found.opted_out != opted_out
        if changed:
            before = found.opted_out
            found.opted_out = opted_out
            await audit.record(s, actor=actor, action=f"practitioner.{'opt_out' if opted_out else 'opt_in'}",
                               practice_id=practice_id, before={"opted_out": before}, after={"opted_out": opted_out},
                               details={"practitioner_id": found.id})
        return OptOut(found.id, found.name, opted_out, changed)


def _number(word: str) -> int | None:
    """A typed id: ASCII digits only (isdigit() also takes "²", which int() refuses) and bounded."""
    return int(word) if word.isascii() and word.isdigit() and len(word) <= 18 else None


async def find_connection(session: AsyncSession, practice_id: int, ref: str) -> Connection:
    """A practice's connection by number, account, or integration word (when only one matches)."""
    word = ref.strip().lower().removeprefix("#")
    chosen = registry.resolve(word)
    conns = (await session.scalars(
        select(Connection).where(Connection.practice_id == practice_id).order_by(Connection.id))).all()
    number = _number(word)
    matches = [c for c in conns if (number is not None and c.id == number) or c.account.lower() == word
               or (chosen is not None and c.provider == chosen.name)]
    if not matches:
        raise NotFound(f"no connection is called {ref!r}; `status` lists them")
    if len(matches) > 1:
        ids = ", ".join(str(c.id) for c in matches)
        raise SettingError(f"{ref!r} names connections {ids}; say which by its number")
    return matches[0]


async def find_calendar(session: AsyncSession, practice_id: int, ref: str) -> Calendar:
    """A practice's calendar by number or by name (when only one has that name)."""
    word = ref.strip().lower().removeprefix("#")
    rows = (await session.scalars(
        select(Calendar).join(Connection, Connection.id == Calendar.connection_id)
        .where(Connection.practice_id == practice_id).order_by(Calendar.id))).all()
    number = _number(word)
    matches = [c for c in rows if (number is not None and c.id == number) or (c.name or "").lower() == word]
    if not matches:
        raise NotFound(f"no calendar is called {ref!r}; `status` lists them")
    if len(matches) > 1:
        ids = ", ".join(str(c.id) for c in matches)
        raise SettingError(f"{ref!r} names calendars {ids}; say which by its number")
    return matches[0]


_Row = TypeVar("_Row", Connection, Calendar)


async def _by_ref(session: AsyncSession, practice_id: int | None, ref: str | int, kind: type[_Row], what: str,
                  find: Callable[[AsyncSession, int, str], Awaitable[_Row]]) -> _Row:
    """A connection or calendar by its id (the CLI's number, any practice) or by a practice's words for it."""
    if isinstance(ref, int):
        found = await session.get(kind, ref)
        if found is None:
            raise NotFound(f"there is no {what} {ref}; `clinicbot {what} list` shows them")
        return found
    assert practice_id is not None
    return await find(session, practice_id, ref)


async def rewrite_copies(session: AsyncSession, calendar: Calendar, now: datetime, reason: str) -> int:
    """Queue an update of every copy on a mirror calendar (the worker projects each afresh)."""
    if calendar.role != "mirror":
        return 0
    rows = (await session.execute(
        select(Link.appointment_id, Appointment.version)
        .join(Appointment, Appointment.id == Link.appointment_id)
        .where(Link.calendar_id == calendar.id, Link.remote_id.is_not(None), Link.state == "ok"))).all()
    # One key per change (not per clock reading: two changes in one second each rewrite).
    change = secrets.token_hex(6)
    ops = [op_row(calendar.connection_id, calendar.id, appt_id, version, "update", now,
                  key=f"{appt_id}:{calendar.id}:{version}:{reason}:{change}")
           for appt_id, version in rows]
    await enqueue(session, ops)
    return len(ops)


async def calendar_settings(
    core: Core, practice_id: int | None, ref: str | int, *, projection: str | None = None,
    show_as_free: bool | None = None, actor: str,
) -> CalendarSettings:
    """Change how clinicbot's copies look on a calendar; the copies already there are written again."""
    if projection is not None and projection not in PROJECTIONS:
        raise SettingError(f"projection must be one of {', '.join(PROJECTIONS)}")
    now = core.clock()
    async with core.store.session() as s:
        found = await _by_ref(s, practice_id, ref, Calendar, "calendar", find_calendar)
        conn = await s.get(Connection, found.connection_id)
        assert conn is not None
        before = {"projection": found.projection, "show_as_free": found.show_as_free}
        if projection is not None:
            found.projection = projection
        if show_as_free is not None:
            found.show_as_free = show_as_free
        after = {"projection": found.projection, "show_as_free": found.show_as_free}
        rewritten = 0
        if after != before:
            await s.flush()
            rewritten = await rewrite_copies(s, found, now, "restyle")
            await audit.record(s, actor=actor, action="calendar.settings", practice_id=conn.practice_id,
                               before=before, after=after, details={"calendar_id": found.id, "rewritten": rewritten})
        return CalendarSettings(found.id, found.name, found.role, found.projection, found.show_as_free,
                                after != before, rewritten)


async def set_window(
    core: Core, practice_id: int | None, ref: str | int, *, days_back: int | None = None,
    days_ahead: int | None = None, actor: str,
) -> WindowSettings:
    """Change a connection's sync window; its calendars are read in full at the next sync."""
    if days_back is not None and not 0 <= days_back <= MAX_DAYS_BACK:
        raise SettingError(f"days back must be 0 to {MAX_DAYS_BACK}")
    if days_ahead is not None and not 1 <= days_ahead <= MAX_DAYS_AHEAD:
        raise SettingError(f"days ahead must be 1 to {MAX_DAYS_AHEAD}")
    async with core.store.session() as s:
        conn = await _by_ref(s, practice_id, ref, Connection, "connection", find_connection)
        before = {"days_back": conn.window_days_back, "days_ahead": conn.window_days_ahead}
        if days_back is not None:
            conn.window_days_back = days_back
        if days_ahead is not None:
            conn.window_days_ahead = days_ahead
        after = {"days_back": conn.window_days_back, "days_ahead": conn.window_days_ahead}
        if after != before:
            # A cursor only reports changes: what the new window adds is found by one full read.
            await s.execute(update(Calendar).where(Calendar.connection_id == conn.id).values(cursor=None))
            await audit.record(s, actor=actor, action="connection.window", practice_id=conn.practice_id,
                               before=before, after=after, details={"connection_id": conn.id})
        return WindowSettings(conn.id, f"{conn.provider} {conn.account}".strip(), conn.window_days_back,
                              conn.window_days_ahead, after != before)



@dataclass(frozen=True, slots=True)
class OptionSettings:
    connection_id: int
    label: str
    name: str
    value: str
    changed: bool


async def set_option(
    core: Core, practice_id: int | None, ref: str | int, name: str, value: str, *, actor: str,
) -> OptionSettings:
    """Set one of the options a connection's integration declares; audited as connection.option."""
    async with core.store.session() as s:
        conn = await _by_ref(s, practice_id, ref, Connection, "connection", find_connection)
        try:
            declared = {o.name: o for o in registry.get(conn.provider).connect.options}
        except ProviderError as exc:
            raise SettingError(str(exc)) from None
        option = declared.get(name)
        if option is None:
            names = ", ".join(n.replace("_", "-") for n in declared) or "none"
            raise SettingError(f"a {conn.provider} connection has no option {name.replace('_', '-')!r} "
                               f"(it has: {names})")
        if option.personal:
            # What the person's sign-in grants: only signing in again with the option changes it.
            raise SettingError(f"{name.replace('_', '-')} is chosen when signing in: the account's owner runs "
                               f"`connect {conn.provider} {option.flag} {value}` and signs in again")
        if option.choices and value not in option.choices:
            raise SettingError(f"{name.replace('_', '-')} must be one of {', '.join(option.choices)}")
        before = (conn.config or {}).get(name, option.default)
        if before != value:
            conn.config = {**(conn.config or {}), name: value}  # a new dict, so the JSON column is written
            await s.execute(update(Calendar).where(Calendar.connection_id == conn.id).values(cursor=None))
            await audit.record(s, actor=actor, action="connection.option", practice_id=conn.practice_id,
                               before={name: before}, after={name: value}, details={"connection_id": conn.id})
        return OptionSettings(conn.id, f"{conn.provider} {conn.account}".strip(), name, value, before != value)
