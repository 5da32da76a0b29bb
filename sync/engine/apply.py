"""Apply planned actions: state changes, outbox rows, audit entries and change events, in the
caller's one transaction.

Imports are written in bulk (one multi-row INSERT per table per batch), so a first sync of
10,000 bookings costs a handful of statements, not 10,000 ORM flushes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract.items import NO_SHOW, EventData
from sync.engine import conflict_rows
from sync.engine.mirror_ops import ApptRef, enqueue, mirror_ops, op_row
from sync.engine.places import Places, load_places
from sync.engine.plan import (
    Action,
    CalendarView,
    CancelOrDelete,
    DropLink,
    FollowMirror,
    ImportNew,
    Policy,
    PushToMirrors,
    RaiseConflict,
    RefreshLink,
    RepairMirror,
    RestoreMirror,
    UpdateFromSource,
)
from sync.engine.snapshots import load_overlapping
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent, EventKind, sync_memo
from sync.store import audit
from sync.store.bulk import insert_many
from sync.store.model import Appointment, Link, Practitioner

__all__ = ["ACTOR", "SyncReport", "apply", "event_fields"]

ACTOR = "system:sync"
_CHUNK = 500  # rows per statement, below SQLite's bound-parameter limit for the id lookup
_AUDITED = ("start", "end", "status", "practitioner_id", "service", "client_name", "client_phone", "title",
            "notes")


@dataclass
class SyncReport:
    """What one sync run did; `failed` counts calendars that could not be read."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    conflicts: int = 0
    failed: int = 0
    unchanged: int = 0
    full_resyncs: int = 0
    outbox_queued: int = 0
    #: Existing appointments queued for copying onto mirrors that asked for a backfill.
    backfilled: int = 0
    calendars: int = 0
    seconds: float = 0.0

    def add(self, other: SyncReport) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


def source_status(ev: EventData) -> str:
    """The appointment status a source item says: a platform's no-show stays distinct from cancelled."""
    if NO_SHOW in ev.categories:
        return "no_show"
    return "tentative" if ev.status == "tentative" else "confirmed"


#: Appointment columns a source event maps to, in `event_values`' order.
EVENT_COLUMNS = ("title", "client_name", "client_email", "client_phone", "notes", "service", "location_text",
                 "start", "end", "tzid", "all_day", "rrule", "exdates", "transparent", "rdates")


def event_values(ev: EventData) -> tuple[Any, ...]:
    """The values of EVENT_COLUMNS a source event maps to."""
    return (ev.summary or None, ev.client_name, ev.client_email, ev.client_phone, ev.description or None,
            ev.service, ev.location or None, ev.start, ev.end, ev.tzid, ev.all_day, ev.rrule,
            [d.isoformat() for d in ev.exdates], ev.transparent, [d.isoformat() for d in ev.rdates])


def event_fields(ev: EventData) -> dict[str, Any]:
    """Appointment columns a source event maps to."""
    return dict(zip(EVENT_COLUMNS, event_values(ev), strict=True))


#: The columns of an imported appointment: the event's, then these.
_IMPORT_COLUMNS = (*EVENT_COLUMNS, "location_id", "practice_id", "practitioner_id", "source_calendar_id",
                   "source_uid", "recurrence_key", "status", "version", "created_at", "updated_at")
_START, _END = EVENT_COLUMNS.index("start"), EVENT_COLUMNS.index("end")
_SERVICE = EVENT_COLUMNS.index("service")
_STATUS = _IMPORT_COLUMNS.index("status")
_LINK_COLUMNS = ("appointment_id", "calendar_id", "remote_id", "etag", "content_hash", "state", "last_synced_at")


async def apply(
    session: AsyncSession,
    core: Core,
    calendar: CalendarView,
    actions: Sequence[Action],
    *,
    policy: Policy,
    mirrors: Sequence[CalendarView],
    now: datetime,
) -> SyncReport:
    """Write every action's state change and outbox ops; the caller commits (with the cursor)."""
    report = SyncReport()
    audits: list[dict[str, Any]] = []
    events: list[AppointmentEvent] = []
    # Imports come first; they record audit entries and emit events chunk by chunk, so a large
    # import never holds 10,000 of each (the audit order is the same as with one list).
    memo = sync_memo(session)
    places = memo.get(("places", calendar.practice_id))
    if places is None:
        places = memo[("places", calendar.practice_id)] = await load_places(session, calendar.practice_id)
    key_to_id = await _imports(session, core, calendar, [a for a in actions if isinstance(a, ImportNew)], now,
                               report, places)
    refs: dict[int, ApptRef] = {}
    changed = [a for a in actions if isinstance(a, (UpdateFromSource, CancelOrDelete))]
    if changed:
        await _updates(session, calendar, changed, now, audits, events, refs, report, places)
    for a in actions:
        if isinstance(a, RefreshLink):
            await session.execute(update(Link).where(Link.id == a.link_id).values(
                etag=a.etag, content_hash=a.content_hash, last_synced_at=now))
        elif isinstance(a, DropLink):
            await session.execute(delete(Link).where(Link.id == a.link_id))
        elif isinstance(a, RaiseConflict):
            report.conflicts += 1
            await _conflict(session, core, calendar, a, key_to_id, audits)
        elif isinstance(a, RepairMirror):
            report.outbox_queued += await _repair(session, calendar, a, now, audits)
        elif isinstance(a, RestoreMirror):
            report.outbox_queued += await _restore(session, calendar, a, now, audits)
        elif isinstance(a, FollowMirror):
            report.updated += await _follow(session, core, calendar, a, now, audits, events, report)
    new_refs = [ApptRef(i, 1, calendar.practitioner_id) for i in key_to_id.values()]
    pushed = {a.appointment_id for a in actions if isinstance(a, PushToMirrors) and a.appointment_id is not None}
    if mirrors and new_refs:
        report.outbox_queued += await mirror_ops(session, new_refs, mirrors, policy, now, new=True)
    upd_refs = [r for i, r in refs.items() if i in pushed or r.cancelled]
    if mirrors and upd_refs:
        report.outbox_queued += await mirror_ops(session, upd_refs, mirrors, policy, now)
    await audit.record_many(session, audits, at=now)
    await core.bus.emit_many(session, events)
    return report


async def _imports(
    session: AsyncSession, core: Core, calendar: CalendarView, imports: list[ImportNew], now: datetime,
    report: SyncReport, places: Places,
) -> dict[tuple[str, str], int]:
    unique: dict[tuple[str, str], ImportNew] = {}
    for imp in imports:
        unique.setdefault((imp.event.uid, imp.recurrence_key), imp)
    table = cast(Table, Appointment.__table__)
    key_to_id: dict[tuple[str, str], int] = {}
    batch = list(unique.items())
    for i in range(0, len(batch), _CHUNK):
        part = batch[i:i + _CHUNK]
        rows = [
            (*event_values(imp.event), places.match(imp.event.location), calendar.practice_id, imp.practitioner_id,
             calendar.id, imp.event.uid, imp.recurrence_key, source_status(imp.event), 1, now, now)
            for _, imp in part
        ]
        # One executemany of values converted in bulk (sync.store.bulk), then one SELECT for the
        # ids: RETURNING with ordered executemany falls back to one statement per row on SQLite.
        await insert_many(session, table, _IMPORT_COLUMNS, rows)
        got = await session.execute(
            select(table.c.id, table.c.source_uid, table.c.recurrence_key).where(
                table.c.source_calendar_id == calendar.id,
                table.c.source_uid.in_(list({imp.event.uid for _, imp in part}))))
        by_key = {(uid, rk): i for i, uid, rk in got.tuples()}
        ids = [by_key[key] for key, _ in part]
        links = []
        audits: list[dict[str, Any]] = []
        events: list[AppointmentEvent] = []
        for (key, imp), appt_id, row in zip(part, ids, rows, strict=True):
            key_to_id[key] = appt_id
            links.append((appt_id, calendar.id, imp.remote_id, imp.etag, imp.content_hash, "ok", now))
            # A creation has no "before"; its patient fields are in the encrypted record itself,
            # so the entry carries the scheduling fields only (no per-field fingerprints to compute).
            audits.append({"actor": ACTOR, "action": "appointment.created", "practice_id": calendar.practice_id,
                           "appointment_id": appt_id,
                           "after": {"start": row[_START], "end": row[_END], "status": row[_STATUS],
                                     "practitioner_id": imp.practitioner_id, "service": row[_SERVICE]},
                           "details": {"calendar_id": calendar.id}})
            events.append(AppointmentEvent(
                kind="created", appointment_id=appt_id, version=1, practice_id=calendar.practice_id,
                practitioner_id=imp.practitioner_id, actor=ACTOR, after={"start": row[_START], "end": row[_END]},
                origin_calendar_id=calendar.id, at=now))
        await insert_many(session, cast(Table, Link.__table__), _LINK_COLUMNS, links)
        await audit.record_many(session, audits, at=now)
        await core.bus.emit_many(session, events)
    report.created += len(key_to_id)
    return key_to_id


async def _updates(
    session: AsyncSession, calendar: CalendarView, changed: list[UpdateFromSource | CancelOrDelete],
    now: datetime, audits: list[dict[str, Any]], events: list[AppointmentEvent], refs: dict[int, ApptRef],
    report: SyncReport, places: Places,
) -> None:
    ids = list(dict.fromkeys(a.appointment_id for a in changed))
    appts: dict[int, Appointment] = {}
    for i in range(0, len(ids), 500):
        for appt in await session.scalars(select(Appointment).where(Appointment.id.in_(ids[i:i + 500]))):
            appts[appt.id] = appt
    for action in changed:
        appt = appts[action.appointment_id]
        before = {k: getattr(appt, k) for k in _AUDITED}
        link_values: dict[str, Any]
        kind: EventKind
        if isinstance(action, UpdateFromSource):
            fields = event_fields(action.event)
            keep_outcome = appt.status in ("no_show", "completed")
            for k, v in fields.items():
                setattr(appt, k, v)
            appt.location_id = places.match(action.event.location)
            if not keep_outcome or NO_SHOW in action.event.categories:
                appt.status = source_status(action.event)
            kind = action.kind
            if appt.status == "no_show" and before["status"] != "no_show":
                kind = "no_show"  # the platform recorded the client as not coming: one no-show event
            link_values = {"etag": action.etag, "content_hash": action.content_hash, "state": "ok",
                           "remote_id": action.remote_id}
            report.updated += 1
        else:
            if appt.status == "cancelled":
                continue
            appt.status = "cancelled"
            kind = "cancelled"
            link_values = ({"etag": action.etag, "content_hash": action.content_hash, "state": "ok"}
                           if action.content_hash else {"content_hash": None, "state": "gone"})
            report.deleted += 1
        appt.version += 1
        appt.updated_at = now
        after = {k: getattr(appt, k) for k in _AUDITED}
        changed_keys = [k for k in _AUDITED if before[k] != after[k]]
        b = {k: before[k] for k in changed_keys}
        a = {k: after[k] for k in changed_keys}
        await session.execute(update(Link).where(Link.appointment_id == appt.id, Link.calendar_id == calendar.id)
                              .values(last_synced_at=now, **link_values))
        audits.append({"actor": ACTOR, "action": f"appointment.{kind}", "practice_id": appt.practice_id,
                       "appointment_id": appt.id, "before": b, "after": a,
                       "details": {"calendar_id": calendar.id} | (
                           {"reason": action.reason} if isinstance(action, CancelOrDelete) else {})})
        events.append(AppointmentEvent(
            kind=kind, appointment_id=appt.id, version=appt.version, practice_id=appt.practice_id,
            practitioner_id=appt.practitioner_id, actor=ACTOR, before=b, after=a,
            origin_calendar_id=calendar.id, at=now))
        refs[appt.id] = ApptRef(appt.id, appt.version, appt.practitioner_id, appt.status == "cancelled")
    await session.flush()


async def _conflict(
    session: AsyncSession, core: Core, calendar: CalendarView, a: RaiseConflict,
    key_to_id: dict[tuple[str, str], int], audits: list[dict[str, Any]],
) -> None:
    appt_id = a.appointment_id if a.appointment_id is not None else key_to_id.get(a.source_key or ("", ""))
    details: dict[str, Any] = {"kind": a.kind, "calendar_id": calendar.id}
    if a.kind == "mirror_edited" and a.link_id is not None:
        await session.execute(update(Link).where(Link.id == a.link_id).values(
            state="conflict", etag=a.etag, content_hash=a.content_hash))
        details |= {"remote_start": a.remote_start, "remote_end": a.remote_end}
    else:
        other_id = a.other_appointment_id
        if other_id is None and a.other_source_key is not None:
            other_id = key_to_id.get(a.other_source_key)
        a = dataclasses.replace(a, other_appointment_id=other_id)
        details["other_appointment_id"] = other_id
    audits.append({"actor": ACTOR, "action": f"sync.conflict.{a.kind}", "practice_id": calendar.practice_id,
                   "appointment_id": appt_id, "details": details})
    if appt_id is None:
        return
    # Staff are told after this transaction commits (sync.notify.conflict_notices), once per conflict.
    if a.kind == "mirror_edited" and a.link_id is not None:
        await conflict_rows.queue_mirror_conflict(
            session, core, practice_id=calendar.practice_id, link_id=a.link_id, calendar_id=calendar.id,
            appointment_id=appt_id, remote_version=a.etag or a.content_hash or "",
            remote_start=a.remote_start, remote_end=a.remote_end)
    elif a.kind == "double_booking" and a.other_appointment_id is not None:
        version = await session.scalar(select(Appointment.version).where(Appointment.id == appt_id))
        await conflict_rows.queue_double_booking(
            session, core, practice_id=calendar.practice_id, calendar_id=calendar.id, appointment_id=appt_id,
            version=int(version or 1), other_appointment_id=a.other_appointment_id)


async def _repair(
    session: AsyncSession, calendar: CalendarView, a: RepairMirror, now: datetime, audits: list[dict[str, Any]],
) -> int:
    link = await session.get(Link, a.link_id)
    appt = await session.get(Appointment, a.appointment_id)
    if link is None or appt is None:
        return 0
    audits.append({"actor": ACTOR, "action": "sync.mirror_deleted", "practice_id": calendar.practice_id,
                   "appointment_id": appt.id, "details": {"calendar_id": calendar.id, "policy": a.mode}})
    if a.mode == "leave":
        link.state, link.content_hash = "gone", None
        return 0
    gone_ref = hashlib.sha256((link.remote_id or "").encode()).hexdigest()[:12]
    link.remote_id, link.etag, link.content_hash, link.state = None, None, None, "pending"
    # Each deletion gets a create of its own. The copy comes back under the same name (CalDAV names it
    # after its UID), so the visit, version and name alone would make a second deletion's key equal to
    # the first's, which the outbox skips as a repeat. One deletion never repairs twice: this
    # transaction clears the link's remote id, so a rerun of the sync finds nothing to repair.
    once = secrets.token_hex(6)
    await enqueue(session, [op_row(calendar.connection_id, calendar.id, appt.id, appt.version, "create", now,
                                   key=f"{appt.id}:{calendar.id}:{appt.version}:repair:{gone_ref}:{once}")])
    return 1


async def _restore(
    session: AsyncSession, calendar: CalendarView, a: RestoreMirror, now: datetime, audits: list[dict[str, Any]],
) -> int:
    """Put a hand-edited copy back as booked: the link takes the edit's etag (so the write is not
    refused as stale) and one update is queued, keyed by the edit it undoes."""
    appt = await session.get(Appointment, a.appointment_id)
    if appt is None:
        return 0
    await session.execute(update(Link).where(Link.id == a.link_id).values(
        etag=a.etag, content_hash=a.content_hash, state="ok", last_synced_at=now))
    audits.append({"actor": ACTOR, "action": "sync.mirror_restored", "practice_id": calendar.practice_id,
                   "appointment_id": appt.id,
                   "details": {"calendar_id": calendar.id, "remote_start": a.remote_start, "remote_end": a.remote_end}})
    # Each edit gets an update of its own: the same edit made again (the same move, so the same content)
    # would otherwise make the first one's key, which the outbox skips as a repeat. One edit is never put
    # back twice: the link now holds the edit's etag, so a rerun of the sync finds nothing changed.
    once = secrets.token_hex(6)
    await enqueue(session, [op_row(calendar.connection_id, calendar.id, appt.id, appt.version, "update", now,
                                   key=f"{appt.id}:{calendar.id}:{appt.version}:restore:{a.content_hash[:16]}:{once}")])
    return 1


async def _follow(
    session: AsyncSession, core: Core, calendar: CalendarView, a: FollowMirror, now: datetime,
    audits: list[dict[str, Any]], events: list[AppointmentEvent], report: SyncReport,
) -> int:
    """The practitioner's move in their own calendar becomes the appointment's time, audited as made
    by them. Its change event is a chat-like one (no origin calendar), so the engine's subscriber
    queues the write to the source and to every mirror, as for a reschedule typed in chat."""
    appt = await session.get(Appointment, a.appointment_id)
    if appt is None or appt.status not in ("confirmed", "tentative"):
        return 0
    handle = await session.scalar(select(Practitioner.handle).where(Practitioner.id == appt.practitioner_id))
    actor = f"practitioner:{handle or appt.practitioner_id}"
    before: dict[str, object] = {"start": appt.start, "end": appt.end}
    appt.start, appt.end = a.start, a.end
    appt.version += 1
    appt.updated_at = now
    await session.execute(update(Link).where(Link.id == a.link_id).values(
        etag=a.etag, content_hash=a.content_hash, state="ok", last_synced_at=now))
    await session.flush()
    after: dict[str, object] = {"start": appt.start, "end": appt.end}
    audits.append({"actor": actor, "action": "appointment.rescheduled", "practice_id": appt.practice_id,
                   "appointment_id": appt.id, "before": before, "after": after,
                   "details": {"calendar_id": calendar.id, "via": "mirror_edit"}})
    events.append(AppointmentEvent(
        kind="rescheduled", appointment_id=appt.id, version=appt.version, practice_id=appt.practice_id,
        practitioner_id=appt.practitioner_id, actor=actor, before=before, after=after, origin_calendar_id=None,
        at=now))
    # A move into another booking's time is a double booking, whoever made it.
    for other in await load_overlapping(session, appt.practitioner_id, a.start, a.end):
        if other.id != appt.id and not other.all_day:
            report.conflicts += 1
            await conflict_rows.queue_double_booking(
                session, core, practice_id=appt.practice_id, calendar_id=calendar.id, appointment_id=appt.id,
                version=appt.version, other_appointment_id=other.id)
            audits.append({"actor": ACTOR, "action": "sync.conflict.double_booking",
                           "practice_id": appt.practice_id, "appointment_id": appt.id,
                           "details": {"kind": "double_booking", "calendar_id": calendar.id,
                                       "other_appointment_id": other.id}})
    return 1
