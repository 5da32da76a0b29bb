"""Dispatch: claim due ledger rows, re-read what they point at, send through the Notifier.

Exactly once, as far as a chat platform allows:
- A row is claimed ("sending", attempts+1) and the claim is COMMITTED before the send, so a row
  is never sent twice by two dispatchers or by a retry after a crash.
- A send that fails with a retryable DeliveryError goes back as "retry" with exponential
  backoff; after `max_attempts` it is "failed" (visible in `status`).
- A row found still "sending" when a dispatcher becomes leader belonged to a sender that died
  mid-send. If the notifier can tell whether it was delivered (`DeliveryCheck`), the row is
  settled from that answer; otherwise it is marked "unknown" and not resent (at most once).

Rows carry ids only: at fire time the appointment is re-read, and a row that no longer matches
it (cancelled, moved, settings changed) is marked "stale" instead of being sent. A row missed
while the server was down is sent once, marked late, within `grace`; older ones are "dropped".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.engine import series
from sync.notify.reminders.planner import (
    ACTIVE_STATUSES,
    FOLLOWUP,
    HORIZON,
    OPEN_STATUSES,
    desired_agendas,
    desired_for_appointment,
    desired_for_visits,
    replan_appointment,
    visits_of,
)
from sync.notify.reminders.prefs import practitioner_zone
from sync.runtime.notifier import DeliveryError, Notification, Notifier
from sync.services.appointments import list_day
from sync.store.database import Store
from sync.store.model import Appointment, Practice, Practitioner, ReminderLedger

__all__ = ["DeliveryCheck", "DispatchReport", "Dispatcher", "delivery_key"]

log = logging.getLogger("clinicbot.reminders")


@runtime_checkable
class DeliveryCheck(Protocol):
    async def was_delivered(self, notification: Notification) -> bool | None:
        """True/False if the platform can tell whether this notification (by its delivery_key)
        arrived; None if it cannot."""
        ...


def delivery_key(row: ReminderLedger) -> str:
    """A stable key for one ledger row, carried in the notification for platform-side checks."""
    return f"{row.appointment_id}:{row.kind}:{row.fire_at.isoformat()}"


@dataclass
class DispatchReport:
    sent: int = 0
    late: int = 0
    retried: int = 0
    failed: int = 0
    stale: int = 0
    dropped: int = 0
    #: Seconds between each row's fire time and its send, for sent rows (the benchmark reads it).
    lateness: list[float] = field(default_factory=list)


@dataclass
class _Claim:
    row_id: int
    notification: Notification
    fire_at: datetime
    attempts: int


def _reminder(appt: Appointment, row: ReminderLedger, **extra: str) -> Notification:
    return Notification(
        kind="reminder",
        practice_id=appt.practice_id,
        practitioner_id=appt.practitioner_id,
        appointment_ids=(appt.id,),
        data={"offset_minutes": int(row.kind.split(":", 1)[1]), "version": appt.version, **extra},
    )


class Dispatcher:
    """Sends what is due. One per process; only the scheduler leader calls `run_due`."""

    def __init__(
        self,
        store: Store,
        notifier: Callable[[], Notifier | None],
        clock: Callable[[], datetime],
        *,
        grace: timedelta = timedelta(minutes=15),
        late_after: timedelta = timedelta(seconds=60),
        batch: int = 500,
        concurrency: int = 32,
        max_attempts: int = 5,
        backoff: timedelta = timedelta(seconds=30),
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.grace = grace
        self.late_after = late_after
        self.batch = batch
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._warned_no_notifier = False

    async def next_due(self) -> datetime | None:
        """The earliest time any open row wants to be tried."""
        async with self.store.session() as session:
            return await session.scalar(
                select(func.min(ReminderLedger.next_attempt_at)).where(
                    ReminderLedger.status.in_(OPEN_STATUSES)
                )
            )

    async def run_due(self) -> DispatchReport:
        """Send everything due now, batch by batch."""
        report = DispatchReport()
        notifier = self.notifier()
        if notifier is None:
            if not self._warned_no_notifier:
                log.warning("reminders are due but no chat front end is enabled to send them")
                self._warned_no_notifier = True
            return report
        while True:
            claims, full = await self._claim_batch(report)
            if claims:
                await self._send_all(notifier, claims, report)
            if not full:
                return report

    async def _claim_batch(self, report: DispatchReport) -> tuple[list[_Claim], bool]:
        now = self.clock()
        claims: list[_Claim] = []
        async with self.store.session() as session:
            rows = list(
                (
                    await session.scalars(
                        select(ReminderLedger)
                        .where(
                            ReminderLedger.status.in_(OPEN_STATUSES), ReminderLedger.next_attempt_at <= now
                        )
                        .order_by(ReminderLedger.next_attempt_at, ReminderLedger.id)
                        .limit(self.batch)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            moved: set[int] = set()
            for row in rows:
                verdict = await self._check(session, row, now)
                if isinstance(verdict, str):
                    row.status = verdict
                    row.next_attempt_at = None
                    if verdict == "dropped":
                        report.dropped += 1
                        log.warning(
                            "reminder dropped: missed beyond the grace period or after its appointment began",
                            extra={
                                "ledger_id": row.id,
                                "kind": row.kind,
                                "late_s": round((now - row.fire_at).total_seconds()),
                            },
                        )
                    else:
                        report.stale += 1
                        if row.appointment_id:
                            moved.add(row.appointment_id)
                    continue
                row.status = "sending"
                row.attempts += 1
                row.late = row.late or (now - row.fire_at) > self.late_after
                data = dict(
                    verdict.data,
                    delivery_key=delivery_key(row),
                    late=row.late,
                    fire_at=row.fire_at.isoformat(),
                    attempt=row.attempts,
                )
                claims.append(
                    _Claim(
                        row.id,
                        Notification(
                            kind=verdict.kind,
                            practice_id=verdict.practice_id,
                            practitioner_id=verdict.practitioner_id,
                            appointment_ids=verdict.appointment_ids,
                            data=data,
                        ),
                        row.fire_at,
                        row.attempts,
                    )
                )
            # A row that no longer matches its appointment (moved or cancelled without an event
            # reaching us): plan the appointment afresh, so a move still gets its reminders.
            await session.flush()
            for appointment_id in sorted(moved):
                await replan_appointment(session, appointment_id, now)
        # The claim is committed here, before anything is sent.
        return claims, len(rows) == self.batch

    async def _check(self, session: AsyncSession, row: ReminderLedger, now: datetime) -> Notification | str:
        """What to send for `row`, or the status to close it with ("stale" or "dropped")."""
        if row.attempts == 0 and now - row.fire_at > self.grace:
            return "dropped"
        if row.appointment_id == 0 and row.kind.startswith("agenda:"):
            person = await session.get(Practitioner, int(row.kind.split(":", 1)[1]))
            if person is None:
                return "stale"
            practice = await session.get(Practice, person.practice_id)
            if row.fire_at not in desired_agendas(person, practice, row.fire_at):
                return "stale"
            day = row.fire_at.astimezone(practitioner_zone(person)).date()
            appts = await list_day(session, person.practice_id, day, person.timezone or "UTC", person.id)
            return Notification(
                kind="agenda",
                practice_id=person.practice_id,
                practitioner_id=person.id,
                appointment_ids=tuple(a.id for a in appts),
                data={"date": day.isoformat(), "count": len(appts)},
            )
        appt = await session.get(Appointment, row.appointment_id)
        if appt is None or appt.status not in ACTIVE_STATUSES:
            return "stale"
        person = await session.get(Practitioner, appt.practitioner_id) if appt.practitioner_id else None
        practice = await session.get(Practice, appt.practice_id)
        if series.is_series(appt):
            return await self._check_visit(session, row, now, appt, person, practice)
        if desired_for_appointment(appt, person, practice).get(row.kind) != row.fire_at:
            return "stale"
        if row.kind == FOLLOWUP:
            return Notification(
                kind="followup",
                practice_id=appt.practice_id,
                practitioner_id=appt.practitioner_id,
                appointment_ids=(appt.id,),
                data={"version": appt.version, "answers": ["attended", "no_show", "book_followup"]},
            )
        if now >= appt.start:
            return "dropped"
        return _reminder(appt, row)

    async def _check_visit(
        self,
        session: AsyncSession,
        row: ReminderLedger,
        now: datetime,
        appt: Appointment,
        person: Practitioner | None,
        practice: Practice | None,
    ) -> Notification | str:
        """A reminder of one visit of a recurring series: still wanted, and for which visit."""
        coming = await visits_of(session, [appt.id], row.fire_at, row.fire_at + HORIZON + timedelta(days=1))
        wanted = desired_for_visits(appt, person, practice, coming[appt.id])
        visit_start = wanted.get((row.kind, row.fire_at))
        if visit_start is None:
            return "stale"
        if now >= visit_start:
            return "dropped"
        return _reminder(appt, row, visit_start=visit_start.isoformat())

    async def _send_all(self, notifier: Notifier, claims: list[_Claim], report: DispatchReport) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        outcomes: dict[int, tuple[str, str | None, datetime | None]] = {}

        async def one(claim: _Claim) -> None:
            async with gate:
                try:
                    await notifier.notify(claim.notification)
                except DeliveryError as exc:
                    retry = exc.retryable and claim.attempts < self.max_attempts
                    outcomes[claim.row_id] = ("retry" if retry else "failed", str(exc)[:500], None)
                except Exception as exc:  # a notifier bug must not take the other sends with it
                    log.exception("notifier raised", extra={"ledger_id": claim.row_id})
                    outcomes[claim.row_id] = ("failed", f"{type(exc).__name__}", None)
                else:
                    outcomes[claim.row_id] = ("sent", None, self.clock())

        await asyncio.gather(*(one(c) for c in claims))
        by_id = {c.row_id: c for c in claims}
        async with self.store.session() as session:
            for row_id, (status, error, sent_at) in outcomes.items():
                claim = by_id[row_id]
                values: dict[str, object] = {"status": status, "last_error": error, "next_attempt_at": None}
                if status == "sent":
                    assert sent_at is not None
                    values["sent_at"] = sent_at
                    report.sent += 1
                    report.late += bool(claim.notification.data.get("late"))
                    report.lateness.append((sent_at - claim.fire_at).total_seconds())
                elif status == "retry":
                    values["next_attempt_at"] = self.clock() + self.backoff * (2 ** (claim.attempts - 1))
                    report.retried += 1
                    log.warning(
                        "reminder send failed; will retry",
                        extra={"ledger_id": row_id, "attempt": claim.attempts},
                    )
                else:
                    report.failed += 1
                    log.error(
                        "reminder send failed for good",
                        extra={"ledger_id": row_id, "attempts": claim.attempts},
                    )
                await session.execute(
                    update(ReminderLedger).where(ReminderLedger.id == row_id).values(**values)
                )

    async def recover_in_doubt(self) -> int:
        """Settle rows a dead sender left in "sending"; call once on becoming the leader."""
        notifier = self.notifier()
        async with self.store.session() as session:
            rows = list(
                (
                    await session.scalars(select(ReminderLedger).where(ReminderLedger.status == "sending"))
                ).all()
            )
            for row in rows:
                answer: bool | None = None
                if isinstance(notifier, DeliveryCheck):
                    probe = Notification(
                        kind="notice", practice_id=0, data={"delivery_key": delivery_key(row)}
                    )
                    try:
                        answer = await notifier.was_delivered(probe)
                    except DeliveryError:
                        answer = None
                if answer is True:
                    row.status, row.sent_at = "sent", self.clock()
                elif answer is False:
                    row.status, row.next_attempt_at = "retry", self.clock()
                else:
                    row.status, row.last_error = "unknown", "the sender stopped mid-send; not resent"
                log.warning(
                    "settled a reminder left mid-send", extra={"ledger_id": row.id, "status": row.status}
                )
        return len(rows)
