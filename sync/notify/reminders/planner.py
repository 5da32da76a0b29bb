"""Planning: turn appointments and preferences into ReminderLedger rows in status "planned".

The ledger is the schedule's source of truth; the scheduler keeps one dispatcher job that wakes
at the earliest planned row, rather than one APScheduler job per reminder. Planning is a pure
function of the current state (`desired_for_appointment`), so replanning is idempotent: it deletes
open rows that no longer match and inserts the missing ones (ON CONFLICT DO NOTHING, so two
processes replanning at once cannot fail each other's transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from sync.engine import series
from sync.engine.snapshots import appointment_rows
from sync.notify.reminders.prefs import MAX_OFFSET_MINUTES, ReminderPrefs, effective_prefs, practitioner_zone
from sync.notify.reminders.timing import agenda_fire_time, offset_fire_time, shift_out_of_quiet
from sync.runtime.events import AppointmentEvent
from sync.store.model import Appointment, Practice, Practitioner, ReminderLedger

__all__ = [
    "ACTIVE_STATUSES",
    "FOLLOWUP",
    "OPEN_STATUSES",
    "ReminderSubscriber",
    "agenda_kind",
    "desired_agendas",
    "desired_for_appointment",
    "desired_for_visits",
    "plan_upcoming",
    "reminder_kind",
    "replan_appointment",
    "replan_practitioner",
    "visits_of",
]

log = logging.getLogger("clinicbot.reminders")

ACTIVE_STATUSES = ("confirmed", "tentative")
#: Ledger rows the dispatcher may still send; everything else is history.
OPEN_STATUSES = ("planned", "retry")
FOLLOWUP = "followup"
#: How far ahead the periodic sweep looks for appointments without planned rows.
HORIZON = timedelta(minutes=MAX_OFFSET_MINUTES + 60)


def reminder_kind(offset_minutes: int) -> str:
    return f"reminder:{offset_minutes}"


def agenda_kind(practitioner_id: int) -> str:
    return f"agenda:{practitioner_id}"


def _wants_messages(practitioner: Practitioner | None) -> bool:
    return practitioner is not None and practitioner.active and not practitioner.opted_out


def _reminding(
    appt: Appointment, practitioner: Practitioner | None, practice: Practice | None
) -> tuple[ReminderPrefs, ZoneInfo] | None:
    """The practitioner's reminder settings and zone for `appt`, or None when it gets no messages."""
    if appt.status not in ACTIVE_STATUSES or appt.all_day or practitioner is None or not _wants_messages(practitioner):
        return None
    prefs = effective_prefs(practitioner, practice)
    return (prefs, practitioner_zone(practitioner)) if prefs.enabled else None


def desired_for_appointment(
    appt: Appointment, practitioner: Practitioner | None, practice: Practice | None
) -> dict[str, datetime]:
    """Every (kind -> UTC fire time) this appointment should have, past or future."""
    settings = None if appt.rrule else _reminding(appt, practitioner, practice)
    if settings is None:
        return {}
    prefs, zone = settings
    out = {
        reminder_kind(m): shift_out_of_quiet(
            offset_fire_time(appt.start, m, zone), zone, prefs.quiet, appt.start
        )
        for m in prefs.offsets_minutes
    }
    if prefs.followups:
        out[FOLLOWUP] = shift_out_of_quiet(appt.end, zone, prefs.quiet, None)
    return out


def desired_for_visits(
    appt: Appointment,
    practitioner: Practitioner | None,
    practice: Practice | None,
    visits: Iterable[datetime],
) -> dict[tuple[str, datetime], datetime]:
    """For a recurring series row: (kind, UTC fire time) -> visit start, for the reminders of the
    given visits (see `visits_of`). Visits a calendar moved have rows of their own (overrides),
    planned like any appointment; follow-ups are not sent for a series' visits."""
    settings = _reminding(appt, practitioner, practice)
    if settings is None:
        return {}
    prefs, zone = settings
    out: dict[tuple[str, datetime], datetime] = {}
    for start in visits:
        for m in prefs.offsets_minutes:
            fire = shift_out_of_quiet(offset_fire_time(start, m, zone), zone, prefs.quiet, start)
            out[(reminder_kind(m), fire)] = start
    return out


async def visits_of(
    session: AsyncSession, series_ids: Iterable[int], after: datetime, until: datetime
) -> dict[int, list[datetime]]:
    """The visits of each series row, starting in (after, until]; one query for all of them."""
    ids = list(series_ids)
    found: dict[int, list[datetime]] = {i: [] for i in ids}
    if ids:
        for series_id, starts in (await series.visit_starts(session, after, until, Appointment.id.in_(ids))).items():
            found[series_id] = [s for s in starts if after < s <= until]
    return found


def desired_agendas(practitioner: Practitioner, practice: Practice | None, now: datetime) -> list[datetime]:
    """The UTC fire times of this practitioner's agendas for today and tomorrow (local), past or not."""
    if not _wants_messages(practitioner):
        return []
    prefs = effective_prefs(practitioner, practice)
    at = prefs.agenda_at
    if not prefs.enabled or at is None:
        return []
    zone = practitioner_zone(practitioner)
    today = now.astimezone(zone).date()
    days = [today - timedelta(days=1), today, today + timedelta(days=1)]
    return [agenda_fire_time(d, at, zone) for d in days if d.weekday() in prefs.working_days]


async def _insert_planned(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    bind = session.get_bind()
    dialect = postgresql if bind.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(ReminderLedger)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["appointment_id", "kind", "fire_at"])
    )
    await session.execute(stmt)


def _row(appointment_id: int, kind: str, fire_at: datetime, practitioner_id: int | None) -> dict[str, Any]:
    return {
        "appointment_id": appointment_id,
        "kind": kind,
        "fire_at": fire_at,
        "next_attempt_at": fire_at,
        "status": "planned",
        "attempts": 0,
        "late": False,
        "practitioner_id": practitioner_id,
    }


async def _reconcile(
    session: AsyncSession,
    appts: list[Appointment],
    gone_ids: Iterable[int],
    now: datetime,
    *,
    delete_stale: bool = True,
) -> datetime | None:
    """Make the open ledger rows of `appts` match what they should be; return the earliest new row."""
    ids = [a.id for a in appts] + list(gone_ids)
    if not ids:
        return None
    existing: dict[int, list[ReminderLedger]] = {i: [] for i in ids}
    for row in (
        await session.scalars(select(ReminderLedger).where(ReminderLedger.appointment_id.in_(ids)))
    ).all():
        existing[row.appointment_id].append(row)
    people: dict[int, Practitioner | None] = {}
    practices: dict[int, Practice | None] = {}
    visits = await visits_of(session, [a.id for a in appts if series.is_series(a)], now, now + HORIZON)
    stale_ids: list[int] = []
    new_rows: list[dict[str, Any]] = []
    for appt in appts:
        pid = appt.practitioner_id
        if pid is not None and pid not in people:
            people[pid] = await session.get(Practitioner, pid)
        if appt.practice_id not in practices:
            practices[appt.practice_id] = await session.get(Practice, appt.practice_id)
        person, practice = people.get(pid) if pid else None, practices[appt.practice_id]
        if series.is_series(appt):
            want = set(desired_for_visits(appt, person, practice, visits.get(appt.id, ())))
        else:
            want = set(desired_for_appointment(appt, person, practice).items())
        have = {(r.kind, r.fire_at) for r in existing[appt.id]}
        stale_ids += [
            r.id for r in existing[appt.id] if r.status in OPEN_STATUSES and (r.kind, r.fire_at) not in want
        ]
        new_rows += [_row(appt.id, k, t, pid) for k, t in want if t > now and (k, t) not in have]
    for gone in gone_ids:
        stale_ids += [r.id for r in existing[gone] if r.status in OPEN_STATUSES]
    if stale_ids and delete_stale:
        await session.execute(delete(ReminderLedger).where(ReminderLedger.id.in_(stale_ids)))
    await _insert_planned(session, new_rows)
    return min((r["fire_at"] for r in new_rows), default=None)


async def replan_appointment(session: AsyncSession, appointment_id: int, now: datetime) -> datetime | None:
    """Move or remove one appointment's open reminders to match its current state."""
    appt = await session.get(Appointment, appointment_id)
    if appt is None:
        return await _reconcile(session, [], [appointment_id], now)
    return await _reconcile(session, [appt], [], now)


async def _replan_agendas(
    session: AsyncSession, practitioners: list[Practitioner], now: datetime
) -> datetime | None:
    earliest: datetime | None = None
    for person in practitioners:
        practice = await session.get(Practice, person.practice_id)
        kind = agenda_kind(person.id)
        want = {t for t in desired_agendas(person, practice, now) if t > now}
        rows = (
            await session.scalars(
                select(ReminderLedger).where(
                    ReminderLedger.appointment_id == 0,
                    ReminderLedger.kind == kind,
                    ReminderLedger.fire_at > now,
                )
            )
        ).all()
        have = {r.fire_at for r in rows}
        stale = [r.id for r in rows if r.status in OPEN_STATUSES and r.fire_at not in want]
        if stale:
            await session.execute(delete(ReminderLedger).where(ReminderLedger.id.in_(stale)))
        fresh = sorted(want - have)
        await _insert_planned(session, [_row(0, kind, t, person.id) for t in fresh])
        if fresh and (earliest is None or fresh[0] < earliest):
            earliest = fresh[0]
    return earliest


def _earliest(*times: datetime | None) -> datetime | None:
    return min((t for t in times if t is not None), default=None)


async def replan_practitioner(session: AsyncSession, practitioner_id: int, now: datetime) -> datetime | None:
    """Replan every upcoming appointment and agenda of one practitioner (after a settings change)."""
    person = await session.get(Practitioner, practitioner_id)
    if person is None:
        return None
    appts = list(
        (
            await session.scalars(
                select(Appointment).where(
                    Appointment.practitioner_id == practitioner_id, Appointment.end > now
                )
            )
        ).all()
    )
    return _earliest(await _reconcile(session, appts, [], now), await _replan_agendas(session, [person], now))


async def plan_upcoming(session: AsyncSession, now: datetime) -> datetime | None:
    """The periodic sweep: plan rows for appointments within the horizon that lack them, and agendas.

    It only adds: appointments normally get their rows from change events; this catches those
    that arrived another way (an import, a restore, a move behind the bus's back whose old rows
    went stale) and rolls the agendas, and the visits of recurring series, forward. Only
    appointments without an open row (and series) are looked at, so a sweep costs little when
    events did their job.
    """
    has_open_row = (
        select(ReminderLedger.id)
        .where(ReminderLedger.appointment_id == Appointment.id, ReminderLedger.status.in_(OPEN_STATUSES))
        .exists()
    )
    appts = list(
        (
            await session.scalars(
                select(Appointment).where(
                    Appointment.status.in_(ACTIVE_STATUSES),
                    Appointment.end > now,
                    Appointment.start < now + HORIZON,
                    ~has_open_row,
                    series.single(),
                )
            )
        ).all()
    )
    # A series always has visits coming into the horizon: each sweep plans the ones that arrived.
    appts += (
        await session.scalars(
            select(Appointment).where(
                Appointment.status.in_(ACTIVE_STATUSES),
                Appointment.start < now + HORIZON,
                Appointment.rrule.is_not(None),
                Appointment.rrule != "",
                Appointment.recurrence_key == "",
            )
        )
    ).all()
    people = list(
        (
            await session.scalars(
                select(Practitioner).where(Practitioner.active.is_(True), Practitioner.opted_out.is_(False))
            )
        ).all()
    )
    return _earliest(
        await _reconcile(session, appts, [], now, delete_stale=False),
        await _replan_agendas(session, people, now),
    )


class ReminderSubscriber:
    """The event-bus subscriber that moves or removes an appointment's reminders at once."""

    def __init__(
        self, clock: Callable[[], datetime], on_planned: Callable[[datetime], None] | None = None
    ) -> None:
        self.clock = clock
        self.on_planned = on_planned

    async def __call__(self, session: AsyncSession, evt: AppointmentEvent) -> None:
        appt = await session.get(Appointment, evt.appointment_id)
        if appt is not None and appt.version > evt.version:
            return  # a later change of the same appointment replans it
        earliest = await replan_appointment(session, evt.appointment_id, self.clock())
        self._planned(session, earliest)

    async def batch(self, session: AsyncSession, events: Sequence[AppointmentEvent]) -> None:
        """`__call__` for a batch (a sync page): its appointments are replanned together, in a few
        statements rather than a few per appointment."""
        latest: dict[int, int] = {}
        for evt in events:
            latest[evt.appointment_id] = max(latest.get(evt.appointment_id, 0), evt.version)
        appts = await appointment_rows(session, latest)
        # An appointment changed again since its last event here is replanned by that later change.
        current = [a for i, a in appts.items() if a.version <= latest[i]]
        gone = [i for i in latest if i not in appts]
        self._planned(session, await _reconcile(session, current, gone, self.clock()))

    def _planned(self, session: AsyncSession, earliest: datetime | None) -> None:
        hook = self.on_planned
        if earliest is not None and hook is not None:
            when = earliest
            event.listen(session.sync_session, "after_commit", lambda _s: hook(when), once=True)
