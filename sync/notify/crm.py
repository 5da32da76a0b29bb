"""Visits logged to the practice's CRM: queued with the change, written by the leader's job.

A practice with a CRM connected (HubSpot, Salesforce: an integration with a `crm` slot) has every
booking, move, cancel and outcome (attended, no-show) of its visits recorded there. Rules:

- the wanted state is written inside the transaction of the change (a rolled-back change logs
  nothing), one row per (CRM connection, visit) whose `want_version` only rises: a replayed or
  older event changes nothing;
- the job brings the CRM up to the wanted state and records the activity's id when the write lands;
  a crash between the two is safe because the adapter finds the activity by the visit's key before
  it creates one (so a retried create never duplicates);
- a visit that came from the CRM itself is not logged back to it (it is already there);
- a recurring series is logged visit by visit: each occurrence from now to SERIES_AHEAD ahead is
  its own activity (key `clinicbot-<practice>-<series>-<occurrence's RECURRENCE-ID>`), queued when the
  series changes and by the job's sweep as later visits come into the window (the expansion has the
  series helpers' work budget); an override (one changed visit) updates its occurrence's activity,
  and a visit the series no longer has (an EXDATE, a new rule, the series cancelled) is cancelled;
- rate limits are honoured: RateLimited parks the connection's rows until the CRM's wait is over
  and stops that connection's run, without counting as an attempt; AuthExpired marks the
  connection for reconnecting (the reconnect card), one CRM failing never stops the others;
- every write is audited (`crm.logged`, `crm.failed`), without client details.

A connection's config `crm_log: false` turns the logging off (the CRM then only serves as a source).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import AuthExpired, ProviderError, RateLimited, Refused
from sync.contract.crm import CrmLog, CrmRecord, CrmVisit, VisitStage
from sync.engine.reconnect import ExpiredConnection, tell_reconnect
from sync.engine.recurrence import FUTURE, recurrence_key
from sync.engine.series import is_series, occurrences_between
from sync.engine.snapshots import appointment_rows
from sync.integrations import registry
from sync.integrations.providers import connection_info
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent, sync_memo
from sync.runtime.locks import SyncBusy, connection_lock
from sync.store import audit
from sync.store.model import Appointment, Calendar, Connection, CrmEntry, Practice, Practitioner

__all__ = [
    "LOG_EVERY_SECONDS", "SERIES_AHEAD", "SUBSCRIBER_NAME", "CrmStats", "log_due", "log_job", "on_event", "on_events",
    "queue_series", "register",
]  # fmt: skip

log = logging.getLogger("clinicbot.crm")

SUBSCRIBER_NAME = "crm_log"
LOG_EVERY_SECONDS = 60
MAX_ATTEMPTS = 8
#: How far ahead a recurring series' visits are logged, one activity each (the sweep moves it along).
SERIES_AHEAD = timedelta(days=28)
ACTOR = "system:crm"
#: The changes logged (every kind of appointment event), and the stage an appointment's status means.
_KINDS = frozenset({"created", "updated", "rescheduled", "cancelled", "completed", "no_show"})
_STAGES: dict[str, VisitStage] = {"cancelled": "cancelled", "completed": "attended", "no_show": "no_show"}


def register(core: Core) -> None:
    """Hook the CRM subscriber onto core.bus (once)."""
    if SUBSCRIBER_NAME in core.bus.names:
        return

    async def subscriber(session: AsyncSession, events: Sequence[AppointmentEvent]) -> None:
        await on_events(core, session, events)

    core.bus.subscribe_batch(SUBSCRIBER_NAME, subscriber)


def _crm_providers() -> list[str]:
    return [i.name for i in registry.integrations() if i.crm is not None]


def visit_key(practice_id: int, appointment_id: int) -> str:
    """clinicbot's stable name for a visit in every CRM (also the iCalendar UID clients get)."""
    return f"clinicbot-{practice_id}-{appointment_id}"


def _is_crm(provider: str) -> bool:
    if provider not in registry.names():  # gone from this build (Refused's message would list them all)
        return False
    try:
        return registry.get(provider).crm is not None
    except ProviderError:  # registered but not loadable here: it logs nowhere
        return False


async def _logging_connections(session: AsyncSession, practice_id: int) -> list[Connection]:
    # Asked for every change: the practice's own providers are checked (adapters already loaded for
    # its syncs), not every integration (importing them all costs half a second the first time).
    used = (await session.scalars(select(Connection.provider).distinct().where(
        Connection.practice_id == practice_id, Connection.status != "removing"))).all()
    providers = [p for p in used if _is_crm(p)]
    if not providers:
        return []
    conns = (await session.scalars(select(Connection).where(
        Connection.practice_id == practice_id, Connection.provider.in_(providers),
        Connection.status != "removing").order_by(Connection.id))).all()
    return [c for c in conns if (c.config or {}).get("crm_log", True) is not False]


def occurrence_key(practice_id: int, series_id: int, start: datetime | str, all_day: bool = False) -> str:
    """The key of one visit of a series: the series' key and the visit's RECURRENCE-ID (UTC)."""
    rid = start if isinstance(start, str) else recurrence_key(start.date() if all_day else start, all_day)
    return f"{visit_key(practice_id, series_id)}-{rid}"


async def on_event(core: Core, session: AsyncSession, event: AppointmentEvent) -> None:
    """Write what each of the practice's CRMs should now hold of the visit, in the change's transaction."""
    await on_events(core, session, (event,))


async def on_events(core: Core, session: AsyncSession, events: Sequence[AppointmentEvent]) -> None:
    """`on_event` for a batch of changes: each practice's CRM connections are read once per batch, and
    a practice without one costs nothing more."""
    conns_of: dict[int, list[Connection]] = sync_memo(session).setdefault("crm.connections", {})
    logged: list[AppointmentEvent] = []
    for event in events:
        if event.kind not in _KINDS:
            continue
        if event.practice_id not in conns_of:
            conns_of[event.practice_id] = await _logging_connections(session, event.practice_id)
        if conns_of[event.practice_id]:
            logged.append(event)
    if not logged:
        return
    appts = await appointment_rows(session, [e.appointment_id for e in logged])  # at once, not one by one
    practices = {pid: await session.get(Practice, pid) for pid, conns in conns_of.items() if conns}
    for event in logged:
        await _log_event(core, session, event, conns_of[event.practice_id], practices[event.practice_id],
                         appts.get(event.appointment_id))


async def _log_event(core: Core, session: AsyncSession, event: AppointmentEvent, conns: list[Connection],
                     practice: Practice | None, appt: Appointment | None) -> None:
    if appt is None or practice is None:
        return
    if is_series(appt):
        await _queue_series(core, session, practice, appt, conns, event.version, event.kind)
        return
    key = await _override_key(session, practice.id, appt) or visit_key(practice.id, appt.id)
    await _queue_visit(core, session, practice, appt, conns, key=key, version=event.version, kind=event.kind)


async def _override_key(session: AsyncSession, practice_id: int, appt: Appointment) -> str | None:
    """For one changed visit of a series (an override row): its occurrence's key, so the activity the
    series logged for it is the one updated; None for any other row."""
    if not appt.recurrence_key or not appt.source_uid:
        return None
    series_id = await session.scalar(select(Appointment.id).where(
        Appointment.source_calendar_id == appt.source_calendar_id, Appointment.source_uid == appt.source_uid,
        Appointment.recurrence_key == "", Appointment.id != appt.id).limit(1))
    if series_id is None:
        return None
    return occurrence_key(practice_id, series_id, appt.recurrence_key.removesuffix(FUTURE))


async def _queue_series(core: Core, session: AsyncSession, practice: Practice, series: Appointment,
                        conns: list[Connection], version: int, kind: str) -> int:
    """A change of a series: each of its visits from now to SERIES_AHEAD brought to the series' new
    state (one activity each), and a logged visit the series no longer has in the window cancelled;
    how many rows were written."""
    now = core.clock()
    visits = await occurrences_between(session, now, now + SERIES_AHEAD, Appointment.id == series.id)
    written = 0
    keys: set[str] = set()
    for occurrence in visits:
        key = occurrence_key(practice.id, series.id, occurrence.start, bool(series.all_day))
        keys.add(key)
        written += await _queue_visit(core, session, practice, occurrence, conns, key=key, version=version,
                                      kind=kind)
    # Visits logged before that the series no longer holds (removed, or moved by a new rule): cancelled.
    prefix = f"{visit_key(practice.id, series.id)}-"
    gone = (await session.scalars(select(CrmEntry).where(
        CrmEntry.appointment_id == series.id, CrmEntry.visit_key.startswith(prefix),
        CrmEntry.connection_id.in_([c.id for c in conns])))).all()
    for row in gone:
        if row.visit_key in keys or (row.want or {}).get("stage") == "cancelled" or _seen(row, series.id, version):
            continue
        if datetime.fromisoformat(str((row.want or {}).get("end"))) <= now:
            continue  # a past visit keeps what it was
        row.want = {**(row.want or {}), "stage": "cancelled", "moved": False, "of": series.id, "v": version}
        row.want_version = max(row.want_version + 1, version)
        row.status, row.last_error, row.next_attempt_at = "pending", None, now
        if row.remote_id is not None:
            row.attempts = 0
        written += 1
    return written


async def _queue_visit(core: Core, session: AsyncSession, practice: Practice, appt: Appointment,
                       conns: list[Connection], *, key: str, version: int, kind: str, only_new: bool = False) -> int:
    """Write the wanted state of one visit (a single visit, or one of a series) for each CRM; rows written."""
    # Where the visit stands now, whatever the event's kind: an edit of a cancelled visit keeps it cancelled.
    stage = _STAGES.get(appt.status, "booked")
    source_conn = None
    if appt.source_calendar_id is not None:
        source_conn = await session.scalar(select(Calendar.connection_id).where(Calendar.id == appt.source_calendar_id))
    practitioner = await session.get(Practitioner, appt.practitioner_id) if appt.practitioner_id else None
    written = 0
    for conn in conns:
        if conn.id == source_conn:
            continue  # the visit came from this CRM: it is there already
        row = await session.scalar(select(CrmEntry).where(CrmEntry.connection_id == conn.id,
                                                          CrmEntry.visit_key == key))
        if row is not None and (only_new or _seen(row, appt.id, version)):
            continue  # a replayed or older event (or, for the sweep, a visit already logged)
        owner = None
        if appt.practitioner_id is not None:
            owner = await session.scalar(select(Calendar.remote_id).where(
                Calendar.connection_id == conn.id, Calendar.practitioner_id == appt.practitioner_id).limit(1))
        want = {
            "stage": stage, "moved": _moved(kind, row),
            "start": appt.start.isoformat(), "end": appt.end.isoformat(),
            "tzid": appt.tzid or practice.timezone, "title": f"{appt.service or 'Visit'} with "
                                                             f"{practitioner.name if practitioner else practice.name}",
            "practice": practice.name, "practitioner": practitioner.name if practitioner else "",
            "client_name": appt.client_name or "", "client_email": appt.client_email,
            "client_phone": appt.client_phone, "location": appt.location_text or "", "owner_ref": owner,
            # Which appointment row, at which of its versions, this state is of (an override takes a
            # series visit's row over, and its versions count apart from the series').
            "of": appt.id, "v": version,
        }
        if row is not None and row.status == "done" and row.done_version == row.want_version \
                and _same(row.want, want):
            row.want = want  # the CRM holds this already (a series edit that left this visit as it was)
            continue
        if row is None:
            row = CrmEntry(practice_id=practice.id, connection_id=conn.id, appointment_id=appt.id, visit_key=key,
                           done_version=0)
            session.add(row)
        row.appointment_id = appt.id  # an override takes its occurrence's row over from the series
        row.want_version = version if row.want_version is None else max(row.want_version + 1, version)
        row.want = want
        row.status, row.last_error = "pending", None
        if row.remote_id is not None:
            row.attempts = 0
        # else: attempts stay, marking that a create may have been sent (the next write looks for it first)
        row.next_attempt_at = core.clock()
        written += 1
    return written


async def queue_series(core: Core) -> int:
    """The job's sweep: log the visits of every practice's series that came into the window since; rows added.

    Per practice one expansion of all its series (one query, the work budget of the series helpers)
    and one read of the visits already logged; only a visit missing from a CRM costs more."""
    providers = _crm_providers()
    if not providers:
        return 0
    added = 0
    now = core.clock()
    async with core.store.session() as s:
        practice_ids = sorted(set((await s.scalars(select(Connection.practice_id).where(
            Connection.provider.in_(providers), Connection.status != "removing"))).all()))
    for practice_id in practice_ids:
        async with core.store.session() as s:
            practice = await s.get(Practice, practice_id)
            conns = await _logging_connections(s, practice_id)
            if practice is None or not conns:
                continue
            visits = await occurrences_between(s, now, now + SERIES_AHEAD, Appointment.practice_id == practice_id,
                                               Appointment.status == "confirmed")
            series_ids = sorted({v.id for v in visits})
            have: set[tuple[int, str]] = set()
            for n in range(0, len(series_ids), 500):
                have.update((await s.execute(select(CrmEntry.connection_id, CrmEntry.visit_key).where(
                    CrmEntry.practice_id == practice_id,
                    CrmEntry.appointment_id.in_(series_ids[n:n + 500])))).tuples().all())
            for occurrence in visits:
                key = occurrence_key(practice_id, occurrence.id, occurrence.start, bool(occurrence.all_day))
                missing = [c for c in conns if (c.id, key) not in have]
                if missing:
                    added += await _queue_visit(core, s, practice, occurrence, missing, key=key,
                                                version=occurrence.version, kind="created", only_new=True)
    if added:
        log.info("crm series visits queued", extra={"count": added})
    return added


def _seen(row: CrmEntry, appointment_id: int, version: int) -> bool:
    """The row already holds this appointment at `version` or later (a replayed or older event)."""
    want = row.want or {}
    of = want.get("of", row.appointment_id)
    return of == appointment_id and int(want.get("v", row.want_version) or 0) >= version


def _same(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """The same state for the CRM, whichever row and version it came from."""
    def strip(w: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in w.items() if k not in ("of", "v")}
    return strip(old or {}) == strip(new)


def _moved(kind: str, row: CrmEntry | None) -> bool:
    """Whether the visit was last moved: set by a reschedule, kept by an edit, ended by an outcome or cancel."""
    if kind == "rescheduled":
        return True
    if kind in ("created", "updated") and row is not None:
        return bool((row.want or {}).get("moved"))
    return False


def _visit(row: CrmEntry) -> CrmVisit:
    w: dict[str, Any] = dict(row.want or {})
    return CrmVisit(
        key=row.visit_key, stage=w["stage"], start=datetime.fromisoformat(str(w["start"])),
        end=datetime.fromisoformat(str(w["end"])), tzid=str(w.get("tzid") or "UTC"), title=str(w.get("title") or ""),
        practice=str(w.get("practice") or ""), practitioner=str(w.get("practitioner") or ""),
        client_name=str(w.get("client_name") or ""), client_email=w.get("client_email") or None,
        client_phone=w.get("client_phone") or None, location=str(w.get("location") or ""),
        owner_ref=w.get("owner_ref") or None, moved=bool(w.get("moved")),
    )


@dataclass
class CrmStats:
    logged: int = 0
    retried: int = 0
    failed: int = 0
    waiting: int = 0


def _checkpoint(core: Core, label: str) -> None:
    hook = core.services.fault_injector
    if hook is not None:
        hook(label)


async def log_due(core: Core, *, limit: int = 200) -> CrmStats:
    """Write what is due to each CRM (the leader's periodic job); one failing CRM never stops another."""
    stats = CrmStats()
    now = core.clock()
    async with core.store.session() as s:
        due = (await s.execute(select(CrmEntry.id, CrmEntry.connection_id)
                               .join(Connection, Connection.id == CrmEntry.connection_id)
                               .where(CrmEntry.status == "pending", CrmEntry.next_attempt_at <= now,
                                      Connection.status == "active")
                               .order_by(CrmEntry.next_attempt_at, CrmEntry.id).limit(limit))).all()
    by_conn: dict[int, list[int]] = {}
    for entry_id, conn_id in due:
        by_conn.setdefault(conn_id, []).append(entry_id)

    async def run(conn_id: int, ids: list[int]) -> None:
        try:
            async with connection_lock(core, conn_id):
                await _log_connection(core, conn_id, ids, stats)
        except SyncBusy:
            stats.waiting += len(ids)
        except Exception:  # one CRM's surprise never stops the others; the rows stay pending
            log.exception("crm run failed", extra={"connection_id": conn_id})

    if core.store.is_sqlite:
        # SQLite has one writer: concurrent runs would race for the audit chain's next entry.
        for conn_id, ids in by_conn.items():
            await run(conn_id, ids)
    else:  # a slow CRM never holds up another practice's
        await asyncio.gather(*(run(conn_id, ids) for conn_id, ids in by_conn.items()))
    return stats


async def _open(core: Core, conn_id: int) -> tuple[CrmLog, int] | None:
    async with core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        if conn is None:
            return None
        slot = registry.get(conn.provider).crm
        if slot is None:
            return None
        return slot.open(connection_info(conn, core), core.settings), conn.practice_id


async def _log_connection(core: Core, conn_id: int, ids: list[int], stats: CrmStats) -> None:
    opened = await _open(core, conn_id)
    if opened is None:
        return
    crm, practice_id = opened
    try:
        for entry_id in ids:
            async with core.store.session() as s:
                row = await s.get(CrmEntry, entry_id)
                if row is None or row.status != "pending":
                    continue
                visit, version = _visit(row), row.want_version
                known = CrmRecord(row.remote_id, row.person_id) if row.remote_id else None
                first_try = row.attempts == 0 and known is None
                row.attempts += 1
                attempts = row.attempts
            try:
                record = await crm.record(visit, known, first_try=first_try)
            except RateLimited as exc:
                await _park(core, conn_id, entry_id, exc.retry_after)
                stats.waiting += 1
                return  # the CRM asked for quiet: nothing more to it until then
            except AuthExpired as exc:
                await _expired(core, conn_id, entry_id, exc)
                return
            except ProviderError as exc:
                await _failed(core, entry_id, exc, attempts, stats)
                continue
            _checkpoint(core, "crm.remote_done")
            async with core.store.session() as s:
                row = await s.get(CrmEntry, entry_id)
                if row is None:
                    continue
                row.remote_id, row.person_id = record.remote_id, record.person_id
                row.done_version = max(row.done_version, version)
                if row.want_version <= version:
                    row.status, row.last_error = "done", None
                await audit.record(s, actor=ACTOR, action="crm.logged", practice_id=practice_id,
                                   appointment_id=row.appointment_id,
                                   details={"connection_id": conn_id, "stage": visit.stage, "version": version,
                                            "remote_id": record.remote_id})
            stats.logged += 1
    finally:
        await crm.aclose()


async def _park(core: Core, conn_id: int, tried: int, retry_after: float | None) -> None:
    """Hold every pending write to this CRM until its wait is over; the tried one's attempt is undone
    (a throttled request was not processed: it is not our failure, and no create was made)."""
    until = core.clock() + timedelta(seconds=max(retry_after or 0.0, 1.0))
    async with core.store.session() as s:
        rows = (await s.scalars(select(CrmEntry).where(CrmEntry.connection_id == conn_id,
                                                       CrmEntry.status == "pending"))).all()
        for row in rows:
            if row.id == tried:
                row.attempts = max(row.attempts - 1, 0)
            row.next_attempt_at = max(row.next_attempt_at, until)
    log.info("crm rate limited", extra={"connection_id": conn_id, "wait": retry_after})


async def _expired(core: Core, conn_id: int, tried: int, exc: AuthExpired) -> None:
    expired = None
    async with core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        if conn is not None and conn.status != "auth_expired":
            conn.status, conn.last_error, conn.last_error_at = "auth_expired", str(exc)[:300], core.clock()
            await audit.record(s, actor=ACTOR, action="connection.auth_expired", practice_id=conn.practice_id,
                               details={"connection_id": conn.id})
            expired = ExpiredConnection.of(conn)
        row = await s.get(CrmEntry, tried)
        if row is not None:  # refused unread (401): no create was made
            row.attempts = max(row.attempts - 1, 0)
    if expired is not None:
        await tell_reconnect(core, expired)


async def _failed(core: Core, entry_id: int, exc: ProviderError, attempts: int, stats: CrmStats) -> None:
    async with core.store.session() as s:
        row = await s.get(CrmEntry, entry_id)
        if row is None:
            return
        row.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
        if isinstance(exc, Refused) or attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            stats.failed += 1
            await audit.record(s, actor=ACTOR, action="crm.failed", practice_id=row.practice_id,
                               appointment_id=row.appointment_id,
                               details={"connection_id": row.connection_id, "error": type(exc).__name__})
            return
        row.next_attempt_at = core.clock() + timedelta(seconds=min(3600, 30 * 2 ** attempts))
        stats.retried += 1


async def log_job(core: Core) -> None:
    """The periodic job's entry point: the series' visits that came into the window, then what is due."""
    await queue_series(core)
    await log_due(core)
