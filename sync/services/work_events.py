"""The events of people's work calendars (role `work`) for a day's agenda, read live and never stored.

A work calendar's events are not appointments: they are read from the platform when an agenda is
shown, handed to the chat as plain values, and forgotten. Nothing about them (title, attendees,
times) is written to the database; a calendar that cannot be read in time is named instead, and the
agenda still shows everything else. Cancelled events and clinicbot's own copies are left out.
Each event carries its short reference for `track`, and the activity's ref when it is tracked
(sync.services.tracked_events).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BindParameter, Select, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import ProviderError
from sync.contract.items import Window
from sync.engine.recurrence import occurrences
from sync.integrations.providers import open_provider
from sync.runtime.core import Core
from sync.services.tracked_events import event_ref, tracked_ids
from sync.store.model import Calendar, Connection, Practitioner

__all__ = ["READ_TIMEOUT", "WorkCalendars", "WorkDay", "WorkEvent", "work_calendars", "work_day"]

log = logging.getLogger("clinicbot.work_events")

#: A work calendar slower than this is named as unavailable: the agenda must answer within Slack's 3 s.
READ_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class WorkEvent:
    """One event of a work calendar, as shown beside the agenda (held in memory only)."""

    calendar_id: int
    remote_id: str
    start: datetime
    end: datetime
    all_day: bool
    title: str
    person: str
    #: The calendar's person (who may track its events besides staff).
    practitioner_id: int | None = None
    #: The short reference `track` takes (`W3-1a2b3c4d`).
    ref: str = ""
    #: The tracked activity's ref (`A-12`) when someone tracks this event.
    tracked: str = ""


@dataclass(frozen=True, slots=True)
class WorkDay:
    events: tuple[WorkEvent, ...] = ()
    #: Names of work calendars that could not be read just now.
    unavailable: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkCalendars:
    """The practice's work calendars an agenda reads (of one practitioner when asked), with the
    names of their people: what `work_day` needs from the database, before it reads them live."""

    rows: tuple[tuple[Calendar, Connection], ...] = ()
    #: practitioner id -> name, for the calendars' owners
    people: tuple[tuple[int, str], ...] = ()


async def work_calendars(session: AsyncSession, practice_id: int, practitioner_id: int | None) -> WorkCalendars:
    """The work calendars of the practice that sync (of one practitioner when given), in `session`:
    an agenda loads them in its own transaction (sync.services.appointment_views.load_agenda)."""
    query = _work_calendars_select(practitioner_id is not None)
    rows = tuple(await session.execute(query, {"practice_id": practice_id, "practitioner_id": practitioner_id}))
    if not rows:  # most practices have no work calendar: no second query
        return WorkCalendars()
    people = (await session.execute(select(Practitioner.id, Practitioner.name).where(Practitioner.id.in_(
        {c.practitioner_id or n.practitioner_id for c, n in rows} - {None})))).all()
    return WorkCalendars(tuple((c, n) for c, n in rows), tuple((int(i), str(name)) for i, name in people))


@functools.cache
def _work_calendars_select(by_practitioner: bool) -> Select[Calendar, Connection]:
    """`work_calendars`' statement, built once (bound parameters practice_id, practitioner_id): an
    agenda runs it on every request."""
    query = (select(Calendar, Connection).join(Connection, Connection.id == Calendar.connection_id)
             .where(Connection.practice_id == bindparam("practice_id"), Calendar.role == "work",
                    Calendar.sync_enabled.is_(True), Connection.sync_enabled.is_(True),
                    Connection.status == "active").order_by(Calendar.id))
    if by_practitioner:
        practitioner_id: BindParameter[Any] = bindparam("practitioner_id")
        query = query.where(or_(Calendar.practitioner_id == practitioner_id,
                                Calendar.practitioner_id.is_(None)
                                & (Connection.practitioner_id == practitioner_id)))
    return query


async def work_day(core: Core, practice_id: int, day: date, tz: str, practitioner_id: int | None,
                   calendars: WorkCalendars | None = None) -> WorkDay:
    """The day's events of the practice's work calendars (of one practitioner when given), read live.
    `calendars`: those already loaded by `work_calendars` for the same practice and practitioner."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone)
    window = Window(start, datetime.combine(day + timedelta(days=1), time(0), zone))
    if calendars is None:
        async with core.store.session() as s:
            calendars = await work_calendars(s, practice_id, practitioner_id)
    rows, people = calendars.rows, dict(calendars.people)
    if not rows:
        return WorkDay()
    results = await asyncio.gather(*(_read(core, cal, conn, window) for cal, conn in rows))
    tracked = await tracked_ids(core, {cal.id for cal, _ in rows})
    events: list[WorkEvent] = []
    unavailable: list[str] = []
    for (cal, conn), found in zip(rows, results, strict=True):
        owner = cal.practitioner_id or conn.practitioner_id
        person = people.get(owner or 0, conn.account)
        if found is None:
            unavailable.append(cal.name or conn.account)
            continue
        for remote_id, item_start, item_end, all_day, title in found:
            events.append(WorkEvent(cal.id, remote_id, item_start, item_end, all_day, title, person, owner,
                                    event_ref(cal.id, remote_id), tracked.get((cal.id, remote_id), "")))
    events.sort(key=lambda e: (not e.all_day, e.start, e.title))
    return WorkDay(tuple(events), tuple(unavailable))


async def _read(core: Core, cal: Calendar, conn: Connection,
                window: Window) -> list[tuple[str, datetime, datetime, bool, str]] | None:
    provider = open_provider(core, conn, cal)
    try:
        listing = await asyncio.wait_for(provider.changes(None, window), READ_TIMEOUT)
        # A series is shown as its occurrences of the day, in the event's own zone, each with its own
        # id where the platform gives one (so each can be tracked on its own).
        found = occurrences(listing.items, window, provider)
    except (ProviderError, TimeoutError) as exc:
        log.warning("work calendar unavailable", extra={"calendar_id": cal.id, "error": type(exc).__name__})
        return None
    finally:
        await provider.aclose()
    return [(i.remote_id, i.event.start, i.event.end, i.event.all_day, i.event.summary)
            for i in found
            if i.event.status != "cancelled" and not i.event.clinicbot_id
            and window.overlaps(i.event.start, max(i.event.end, i.event.start + timedelta(seconds=1)))]
