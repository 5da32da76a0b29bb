"""Tracked events: an event of a work calendar that someone chose to follow becomes an activity.

A work calendar's events are read live and never stored (sync.services.work_events). `track` turns
one of them into a tracked activity: an Appointment row of kind "activity" whose source calendar is
the work calendar, linked to the event like a booking to its source. From then on the engine reads
that event (and only the tracked ones) at each sync, so an edit in the work calendar reaches the
activity, and a move from chat goes back to the work calendar through the outbox
(`source_reschedule`); it is audited and gets reminders and follow-ups like an appointment.

`untrack` deletes the activity with everything that hangs off it (link, queued writes, reminders,
conflict cards, cached attachments) in one transaction and leaves the calendar event alone; only
the audit entries remain, which name ids, never the event's title or attendees. Tracking the same
event again makes a new activity.

A work calendar with tracked events has a push channel where its platform has them (a Graph
subscription, a Google watch channel; Nylas's app-wide webhook covers every grant already), so an
edit there reaches the activity within seconds: the first `track` on a calendar opens it, the last
`untrack` closes it (sync.integrations.push), and the renewal job renews it with the others.
CalDAV and ICS work calendars are polled.

One visit of a repeating event is tracked as that visit alone, where the platform gives each visit
an id of its own (Google's instance ids, Outlook's and Nylas's occurrence ids): the activity holds the visit's
recurrence key and its link the visit's id, so the engine matches that visit only, a move from chat
writes that visit (the platform makes it an exception of the series, the series is never written),
and the activity is cancelled when the visit is cancelled or the series deleted. The series as a
whole is not tracked (it would be many activities, or one that no calendar could move). Platforms
that address only the whole series (CalDAV, ICS feeds) track single events only.

An event is named in chat by a short reference, `W<calendar id>-<8 hex digits>`: the digits are a
hash of the event's id at the provider, so no id is stored to resolve it; the calendar is read
live (that day, or the connection's window) and the event whose id hashes to them is taken.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract.items import Window
from sync.engine.apply import event_fields, source_status
from sync.engine.plan import Incoming
from sync.engine.recurrence import occurrences
from sync.integrations.providers import open_provider
from sync.integrations.push import ensure_push_quietly
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent
from sync.services.errors import Conflict, Denied, Invalid, NotFound
from sync.store import audit
from sync.store.model import (
    ACTIVITY,
    Appointment,
    AttachmentCopy,
    Calendar,
    ConflictNotice,
    Connection,
    Link,
    OutboxOp,
    Practice,
    ReminderLedger,
)

__all__ = [
    "READ_TIMEOUT",
    "EventRef",
    "Tracked",
    "Untracked",
    "event_ref",
    "parse_event_ref",
    "practice_zone",
    "track",
    "tracked_ids",
    "untrack",
]

#: Reading the work calendar to find the event must fit in a chat answer.
READ_TIMEOUT = 10.0
_REF = re.compile(r"^w(\d{1,9})-([0-9a-f]{8})$")


@dataclass(frozen=True, slots=True)
class EventRef:
    calendar_id: int
    digest: str

    def __str__(self) -> str:
        return f"W{self.calendar_id}-{self.digest}"


@dataclass(frozen=True, slots=True)
class Tracked:
    appointment_id: int
    ref: str
    start: datetime
    #: False when the event was tracked already (nothing changed).
    new: bool


@dataclass(frozen=True, slots=True)
class Untracked:
    ref: str
    event: str


def _digest(remote_id: str) -> str:
    return hashlib.blake2b(remote_id.encode(), digest_size=4).hexdigest()


def event_ref(calendar_id: int, remote_id: str) -> str:
    """The short reference chat shows for one work-calendar event (`W3-1a2b3c4d`)."""
    return str(EventRef(calendar_id, _digest(remote_id)))


def parse_event_ref(text: str) -> EventRef:
    """`W3-1a2b3c4d` (any case) -> EventRef; Invalid otherwise."""
    found = _REF.match(text.strip().lower())
    if found is None:
        raise Invalid(f"{text[:40]!r} is not a work event; the Track button or `today` shows them, like W3-1a2b3c4d")
    return EventRef(int(found.group(1)), found.group(2))


async def practice_zone(core: Core, practice_id: int) -> str:
    """The practice's time zone (how chat writes times)."""
    async with core.store.session() as s:
        return await s.scalar(select(Practice.timezone).where(Practice.id == practice_id)) or "UTC"


async def tracked_ids(core: Core, calendar_ids: set[int]) -> dict[tuple[int, str], str]:
    """(calendar id, event id) -> the activity's ref, for the tracked events of these calendars."""
    if not calendar_ids:
        return {}
    async with core.store.session() as s:
        rows = (await s.execute(
            select(Link.calendar_id, Link.remote_id, Appointment.id)
            .join(Appointment, Appointment.id == Link.appointment_id)
            .where(Link.calendar_id.in_(calendar_ids), Appointment.kind == ACTIVITY))).tuples().all()
    return {(cal_id, rid): f"A-{appt_id}" for cal_id, rid, appt_id in rows if rid is not None}


async def _work_calendar(s: AsyncSession, practice_id: int, ref: EventRef,
                         only_practitioner: int | None) -> tuple[Calendar, Connection]:
    row = (await s.execute(select(Calendar, Connection).join(Connection, Connection.id == Calendar.connection_id)
                           .where(Calendar.id == ref.calendar_id))).tuples().first()
    if row is None or row[1].practice_id != practice_id or row[0].role != "work":
        raise NotFound(f"there is no work calendar {ref.calendar_id}; `today` shows the work events")
    cal, conn = row
    owner = cal.practitioner_id or conn.practitioner_id
    if only_practitioner is not None and owner != only_practitioner:
        raise Denied("you can only track events of your own work calendar; staff can track any")
    if conn.status != "active" or not conn.sync_enabled or not cal.sync_enabled:
        raise Conflict(f"the work calendar {cal.name or conn.account} is not syncing just now; "
                       "`status` says why")
    return cal, conn


async def _find_event(core: Core, cal: Calendar, conn: Connection, ref: EventRef, day: date | None,
                      tz: str) -> Incoming:
    """Read the calendar live (that day, else the connection's window) and pick the event named by `ref`."""
    if day is not None:
        zone = ZoneInfo(tz)
        start = datetime.combine(day, time(0), zone)
        window = Window(start, datetime.combine(day + timedelta(days=1), time(0), zone))
    else:
        window = Window.around(core.clock(), conn.window_days_back, conn.window_days_ahead)
    provider = open_provider(core, conn, cal)
    try:
        listing = await asyncio.wait_for(provider.changes(None, window), READ_TIMEOUT)
        # Off the event loop: the whole window's series are expanded (hundreds on a busy calendar).
        found = await asyncio.to_thread(occurrences, listing.items, window, provider)
    except TimeoutError:
        raise Conflict("the work calendar did not answer in time; try again in a minute") from None
    finally:
        await provider.aclose()
    for item in found:
        if _digest(item.remote_id) != ref.digest:
            continue
        if item.event.clinicbot_id:
            raise Invalid(f"{ref} is clinicbot's own copy of an appointment, not a work event")
        if item.event.rrule or (item.series_remote_id is not None and item.remote_id == item.series_remote_id):
            # Only the whole series has an address there: a move from chat would move every visit.
            raise Invalid(f"{ref} is one visit of a repeating event, and {conn.provider} gives single visits "
                          "no address of their own, so clinicbot cannot track one without touching the "
                          "whole series; track a single event")
        if item.event.status == "cancelled":
            raise Invalid(f"{ref} is cancelled in the work calendar")
        return item
    raise NotFound(f"{ref} is not in that work calendar any more (moved out of the window or deleted); "
                   "`today` shows its events now")


async def track(core: Core, practice_id: int, text: str, *, actor: str, day: date | None = None,
                tz: str = "UTC", only_practitioner: int | None = None) -> Tracked:
    """Make the work event named by `text` a tracked activity (or say it is one already).

    `only_practitioner`: the person may track only their own calendar's events (not staff).
    Raises Invalid, NotFound, Denied, Conflict, or a ProviderError when the calendar cannot be read."""
    ref = parse_event_ref(text)
    async with core.store.session() as s:
        cal, conn = await _work_calendar(s, practice_id, ref, only_practitioner)
    item = await _find_event(core, cal, conn, ref, day, tz)
    now = core.clock()
    async with core.store.session() as s:
        existing = await s.scalar(
            select(Appointment).join(Link, Link.appointment_id == Appointment.id)
            .where(Link.calendar_id == cal.id, Link.remote_id == item.remote_id, Appointment.kind == ACTIVITY))
        if existing is not None:
            return Tracked(existing.id, existing.ref, existing.start, False)
        booked = await s.scalar(
            select(Appointment).where(Appointment.source_calendar_id == cal.id,
                                      Appointment.source_uid == item.event.uid,
                                      Appointment.recurrence_key == item.recurrence_key))
        if booked is not None:  # read in while the calendar was a source calendar
            raise Conflict(f"{ref} is appointment {booked.ref} already (it was read in while this calendar was a "
                           f"source calendar); `appointment {booked.ref}` shows it")
        first = await s.scalar(select(Link.id).where(Link.calendar_id == cal.id).limit(1)) is None
        ev = item.event
        # One visit of a series: its recurrence key names it among the series' visits (the link holds
        # the visit's own id), so edits of that visit alone reach it and a move writes that visit only.
        appt = Appointment(practice_id=practice_id, practitioner_id=cal.practitioner_id or conn.practitioner_id,
                           source_calendar_id=cal.id, source_uid=ev.uid, recurrence_key=item.recurrence_key,
                           kind=ACTIVITY,
                           status=source_status(ev), version=1, created_at=now, updated_at=now)
        for key, value in event_fields(ev).items():
            setattr(appt, key, value)
        s.add(appt)
        await s.flush()
        s.add(Link(appointment_id=appt.id, calendar_id=cal.id, remote_id=item.remote_id, etag=item.etag,
                   content_hash=item.hash(), state="ok", last_synced_at=now))
        await audit.record(s, actor=actor, action="activity.tracked", practice_id=practice_id,
                           appointment_id=appt.id, after={"start": appt.start, "end": appt.end, "title": appt.title},
                           details={"calendar_id": cal.id})
        # origin_calendar_id: it came from that calendar, so nothing is written back there.
        await core.bus.emit(s, AppointmentEvent(
            kind="created", appointment_id=appt.id, version=1, practice_id=practice_id,
            practitioner_id=appt.practitioner_id, actor=actor, origin_calendar_id=cal.id, at=now))
        done = Tracked(appt.id, appt.ref, appt.start, True)
    if first:  # the calendar's first tracked event: its push channel opens now, not after the next poll
        await ensure_push_quietly(core, conn.id)
    return done


async def untrack(core: Core, practice_id: int, text: str, *, actor: str,
                  only_practitioner: int | None = None) -> Untracked:
    """Stop tracking an activity (`A-12`) or a work event (`W3-1a2b3c4d`); the calendar event is left alone."""
    async with core.store.session() as s:
        appt = await _tracked(s, practice_id, text)
        if only_practitioner is not None and appt.practitioner_id != only_practitioner:
            raise Denied("you can only untrack your own activities; staff can untrack any")
        link = await s.scalar(select(Link).where(Link.appointment_id == appt.id,
                                                 Link.calendar_id == appt.source_calendar_id))
        shown = event_ref(link.calendar_id, link.remote_id) if link is not None and link.remote_id else appt.ref
        ref, appt_id, cal_id = appt.ref, appt.id, appt.source_calendar_id
        last = False
        for table in (AttachmentCopy, OutboxOp, ReminderLedger, ConflictNotice):
            await s.execute(delete(table).where(table.appointment_id == appt_id))
        await s.delete(appt)  # its links go with it
        await s.flush()
        if cal_id is not None and await s.scalar(select(Link.id).where(Link.calendar_id == cal_id).limit(1)) is None:
            # Nothing tracked there any more: the calendar is read live only, and its sync cursor
            # (which can hold the provider's event ids) is dropped.
            await s.execute(update(Calendar).where(Calendar.id == cal_id, Calendar.role == "work")
                            .values(cursor=None, cursor_updated_at=None, last_full_sync_at=None))
            last = True
        await audit.record(s, actor=actor, action="activity.untracked", practice_id=practice_id,
                           appointment_id=appt_id, details={"calendar_id": cal_id})
        connection_id = await s.scalar(select(Calendar.connection_id).where(Calendar.id == cal_id)) \
            if last else None
    if connection_id is not None:  # nothing tracked there any more: its push channel closes
        await ensure_push_quietly(core, connection_id)
    return Untracked(ref, shown)


async def _tracked(s: AsyncSession, practice_id: int, text: str) -> Appointment:
    word = text.strip()
    if word[:2].lower() == "a-" and word[2:].isascii() and word[2:].isdigit() and len(word) < 14:
        appt = await s.get(Appointment, int(word[2:]))
    else:
        ref = parse_event_ref(word)
        links = (await s.execute(select(Link.remote_id, Link.appointment_id)
                                 .where(Link.calendar_id == ref.calendar_id))).tuples().all()
        ids = [a for rid, a in links if rid is not None and _digest(rid) == ref.digest]
        appt = await s.get(Appointment, ids[0]) if ids else None
    if appt is None or appt.practice_id != practice_id or appt.kind != ACTIVITY:
        raise NotFound(f"{word[:40]} is not a tracked activity; `today` shows what is tracked")
    return appt

