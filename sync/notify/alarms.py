"""Alarms: problems that stop sync, told to the practice's staff channel (or its admins) once each.

An alarm is an incident with a start and an end, found by looking at the state the sync already
keeps, so it needs no hook in every place that can fail:
- `auth_expired`: a connection whose sign-in expired or whose grant was revoked (AuthExpired);
- `push_failed`: a push channel that could not be renewed before it expired;
- `push_removed`: a webhook subscription the platform removed or disabled, not made again yet;
- `failing`: a connection whose syncs have failed for longer than CLINICBOT_ALARM_FAILING_MINUTES;
- `outbox_failed`: remote writes of a connection that failed for good (retries exhausted).

`sweep` opens a row for each condition that holds and has no open incident, and closes the open
ones whose condition is gone. The row's unique `open_key` allows one open incident per subject, so
a restart or a second replica opens nothing twice; a close is a conditional UPDATE, so it happens
once. `deliver_due` claims each pending message with a conditional UPDATE before sending it:
the opening message once, and a recovery message once when an incident that was told clears.
An incident that clears before it was told is never told. The leader runs both (`AlarmWorker`).
Messages carry provider, account, calendar names and counts; never patient data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import Refused
from sync.integrations import registry
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification, Notifier
from sync.store import audit
from sync.store.model import Alarm, Calendar, Connection, OutboxOp, WebhookSubscription

__all__ = [
    "ACTOR",
    "AlarmWorker",
    "Condition",
    "SweepReport",
    "conditions",
    "deliver_due",
    "notification_for",
    "sweep",
]

log = logging.getLogger("clinicbot.alarms")

ACTOR = "system:alarms"
MAX_ATTEMPTS = 6
BASE_DELAY = 30.0
#: Appointment references listed in an outbox alarm (the count says how many there are in all).
MAX_REFS = 10


@dataclass(frozen=True, slots=True)
class Condition:
    """One problem that holds now: what kind, about what, and what the message shows."""

    kind: str
    subject: str
    practice_id: int
    connection_id: int | None = None
    calendar_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"


@dataclass(slots=True)
class SweepReport:
    opened: int = 0
    cleared: int = 0


def _title(provider: str) -> str:
    try:
        return registry.get(provider).title
    except Refused:
        return provider


def _word(provider: str) -> str:
    try:
        return registry.get(provider).chat_word
    except Refused:
        return provider


def _since(conn: Connection) -> datetime:
    return conn.last_success_at or conn.created_at


async def conditions(session: AsyncSession, now: datetime, failing_after: timedelta) -> dict[str, Condition]:
    """Every alarm condition that holds now, by its open key (connections with sync on only)."""
    found: dict[str, Condition] = {}

    def add(c: Condition) -> None:
        found[c.key] = c

    conns = {c.id: c for c in (await session.scalars(
        select(Connection).where(Connection.sync_enabled.is_(True)).order_by(Connection.id))).all()}
    for conn in conns.values():
        base = {"provider": conn.provider, "title": _title(conn.provider), "account": conn.account}
        subject = f"connection:{conn.id}"
        if conn.status == "auth_expired":
            add(Condition("auth_expired", subject, conn.practice_id, conn.id, details=base))
        elif conn.last_error and now - _since(conn) >= failing_after:
            error = conn.last_error.split(":", 1)[0][:80]  # the error class; the adapter's text may be long
            add(Condition("failing", subject, conn.practice_id, conn.id,
                          details={**base, "error": error, "since": _since(conn).isoformat()}))
    subs = (await session.execute(
        select(WebhookSubscription.connection_id, WebhookSubscription.calendar_id, WebhookSubscription.status,
               Calendar.name)
        .outerjoin(Calendar, Calendar.id == WebhookSubscription.calendar_id)
        .where(WebhookSubscription.status.in_(("failed", "removed"))))).all()
    for conn_id, cal_id, status, cal_name in subs:
        owner = conns.get(conn_id)
        if owner is None:
            continue
        kind = "push_failed" if status == "failed" else "push_removed"
        where = f"calendar:{cal_id}" if cal_id is not None else f"connection:{conn_id}"
        add(Condition(kind, where, owner.practice_id, conn_id, cal_id, details={
            "provider": owner.provider, "title": _title(owner.provider), "account": owner.account,
            "calendar": cal_name or ""}))
    failed = (await session.execute(
        select(OutboxOp.connection_id, func.count(), func.min(OutboxOp.appointment_id))
        .where(OutboxOp.status == "failed").group_by(OutboxOp.connection_id))).all()
    for conn_id, count, _ in failed:
        writer = conns.get(conn_id)
        if writer is None:
            continue
        refs = (await session.scalars(
            select(OutboxOp.appointment_id).where(OutboxOp.connection_id == conn_id, OutboxOp.status == "failed",
                                                  OutboxOp.appointment_id.is_not(None))
            .order_by(OutboxOp.id).limit(MAX_REFS))).all()
        add(Condition("outbox_failed", f"connection:{conn_id}", writer.practice_id, conn_id, details={
            "provider": writer.provider, "title": _title(writer.provider), "account": writer.account,
            "count": int(count), "appointments": [f"A-{r}" for r in dict.fromkeys(refs)]}))
    return found


async def sweep(core: Core) -> SweepReport:
    """Open an incident for each new condition and close the open ones that ended; audited."""
    now = core.clock()
    failing_after = timedelta(minutes=core.settings.alarm_failing_minutes)
    report = SweepReport()
    async with core.store.session() as s:
        holding = await conditions(s, now, failing_after)
        open_alarms = (await s.scalars(select(Alarm).where(Alarm.open_key.is_not(None)))).all()
        open_rows = {str(a.open_key): a for a in open_alarms}
        syncing = set((await s.scalars(select(Connection.id).where(Connection.sync_enabled.is_(True)))).all())
        for key, c in holding.items():
            if key in open_rows:
                continue
            try:
                async with s.begin_nested():
                    s.add(Alarm(practice_id=c.practice_id, kind=c.kind, subject=c.subject, open_key=key,
                                connection_id=c.connection_id, calendar_id=c.calendar_id, details=c.details,
                                opened_at=now, next_attempt_at=now))
            except IntegrityError:
                continue  # another replica opened it a moment ago
            await audit.record(s, actor=ACTOR, action="alarm.opened", practice_id=c.practice_id,
                               details={"kind": c.kind, "subject": c.subject})
            report.opened += 1
        for key, row in open_rows.items():
            if key in holding:
                continue
            told = row.notice_status in ("sent", "sending")
            # Removed or turned off: the problem is not solved, nobody needs to act on it any more.
            ended = "resolved" if row.connection_id in syncing else "sync_off"
            closed = await s.execute(
                update(Alarm).where(Alarm.id == row.id, Alarm.open_key.is_not(None))
                .values(open_key=None, cleared_at=now, details={**(row.details or {}), "ended": ended},
                        recovery_status="pending" if told else "none",
                        notice_status=row.notice_status if told or row.notice_status == "failed" else "skipped",
                        next_attempt_at=now, attempts=0 if told else row.attempts)
                .execution_options(synchronize_session=False))
            if getattr(closed, "rowcount", 0) != 1:
                continue
            await audit.record(s, actor=ACTOR, action="alarm.cleared", practice_id=row.practice_id,
                               details={"kind": row.kind, "subject": row.subject})
            report.cleared += 1
    if report.opened or report.cleared:
        log.info("alarms swept", extra={"opened": report.opened, "cleared": report.cleared})
    return report


def _reconnect_steps(d: dict[str, Any]) -> tuple[str, ...]:
    word = _word(str(d.get("provider", "")))
    who = f" as {d['account']}" if d.get("account") else ""
    return (
        f"The sign-in for {d.get('title')}{who} has expired or was revoked; its sync is paused.",
        f"Its owner (or an admin) types `connect {word}` and signs in{who} again: the connection and "
        "its calendars are kept.",
    )


def _opening_text(alarm: Alarm) -> tuple[str, str]:
    d = alarm.details or {}
    what = f"{d.get('title', '')} {d.get('account', '')}".strip()
    match alarm.kind:
        case "push_failed":
            return ("Change notifications stopped",
                    f"The change notifications for {d.get('calendar') or 'a calendar'} ({what}) could not be renewed; "
                    "it is polled instead, so changes arrive later. `sync status` shows it.")
        case "push_removed":
            return ("Change notifications removed",
                    f"{d.get('title')} removed or disabled the change notifications for "
                    f"{d.get('calendar') or 'a calendar'} ({what}); clinicbot tries to make them again and "
                    "polls meanwhile.")
        case "failing":
            return ("A connection keeps failing",
                    f"{what} has not synced since {str(d.get('since', ''))[:16].replace('T', ' ')} UTC "
                    f"({d.get('error', 'error')}). `sync status` shows the reason.")
        case "outbox_failed":
            refs = ", ".join(d.get("appointments") or [])
            return ("Calendar writes failed",
                    f"{d.get('count', 0)} change(s) could not be written to {what} after every retry"
                    f"{': ' + refs if refs else ''}. `sync status` shows the errors.")
    return ("Sync problem", f"{what}: {alarm.kind.replace('_', ' ')}")


_RECOVERED = {
    "auth_expired": "{what} is signed in again; sync has resumed.",
    "push_failed": "Change notifications for {calendar} ({what}) work again.",
    "push_removed": "Change notifications for {calendar} ({what}) work again.",
    "failing": "{what} syncs again.",
    "outbox_failed": "The failed writes to {what} were dealt with.",
}


def notification_for(alarm: Alarm, recovery: bool) -> Notification:
    """The message for an incident's start or end: to the staff channel, else the admins by DM."""
    d = alarm.details or {}
    what = f"{d.get('title', '')} {d.get('account', '')}".strip()
    base = {"alarm_id": alarm.id, "alarm": alarm.kind}
    if recovery:
        template = _RECOVERED.get(alarm.kind, "{what} is back to normal.")
        if d.get("ended") == "sync_off":
            template = "{what} was removed or its sync turned off; this alarm is closed."
        text = template.format(
            what=what, calendar=d.get("calendar") or "a calendar")
        return Notification(kind="notice", practice_id=alarm.practice_id, audience="ops",
                            data={**base, "title": "Resolved", "text": text})
    if alarm.kind == "auth_expired":
        return Notification(kind="reconnect", practice_id=alarm.practice_id, audience="ops", data={
            **base, "connection_id": alarm.connection_id or 0, "provider": d.get("title", ""),
            "account": d.get("account", ""), "url": None, "steps": list(_reconnect_steps(d))})
    title, text = _opening_text(alarm)
    return Notification(kind="notice", practice_id=alarm.practice_id, audience="ops",
                        data={**base, "title": title, "text": text})


async def _claim(core: Core, alarm_id: int, column: str) -> Alarm | None:
    status = getattr(Alarm, column)
    async with core.store.session() as s:
        claimed = await s.execute(
            update(Alarm).where(Alarm.id == alarm_id, status == "pending")
            .values({column: "sending", "attempts": Alarm.attempts + 1}))
        if getattr(claimed, "rowcount", 0) != 1:
            return None
        return await s.get(Alarm, alarm_id)


async def _finish(core: Core, alarm: Alarm, column: str, error: DeliveryError | None) -> None:
    now = core.clock()
    values: dict[str, object]
    if error is None:
        values = {column: "sent", "last_error": None, "attempts": 0}
    elif error.retryable and alarm.attempts < MAX_ATTEMPTS:
        values = {column: "pending", "last_error": str(error)[:300],
                  "next_attempt_at": now + timedelta(seconds=BASE_DELAY * 2 ** (alarm.attempts - 1))}
    else:
        values = {column: "failed", "last_error": str(error)[:300]}
    async with core.store.session() as s:
        await s.execute(update(Alarm).where(Alarm.id == alarm.id).values(values))


async def deliver_due(core: Core, notifier: Notifier, limit: int = 50) -> int:
    """Send every due opening and recovery message once; returns how many went out."""
    now = core.clock()
    async with core.store.session() as s:
        rows = (await s.execute(
            select(Alarm.id, Alarm.notice_status, Alarm.recovery_status)
            .where(((Alarm.notice_status == "pending") | (Alarm.recovery_status == "pending"))
                   & (Alarm.next_attempt_at <= now))
            .order_by(Alarm.id).limit(limit))).all()
    sent = 0
    for alarm_id, _notice, recovery in rows:
        # An incident that cleared has its opening message settled: only the recovery is left.
        column = "recovery_status" if recovery == "pending" else "notice_status"
        alarm = await _claim(core, alarm_id, column)
        if alarm is None:
            continue
        error: DeliveryError | None = None
        try:
            await notifier.notify(notification_for(alarm, recovery=column == "recovery_status"))
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # a bug in a sender: keep the row, retry later
            error = DeliveryError(f"unexpected {type(exc).__name__}")
        await _finish(core, alarm, column, error)
        extra = {"alarm_id": alarm_id, "kind": alarm.kind, "recovery": column == "recovery_status"}
        if error is None:
            sent += 1
            log.info("alarm told", extra=extra)
        else:
            log.warning("alarm not delivered", extra={**extra, "error": str(error)[:200]})
    return sent


async def next_due(core: Core) -> datetime | None:
    async with core.store.session() as s:
        due: datetime | None = await s.scalar(
            select(func.min(Alarm.next_attempt_at))
            .where((Alarm.notice_status == "pending") | (Alarm.recovery_status == "pending")))
        return due


class AlarmWorker:
    """The loop: sweep, then deliver; every `interval` seconds, when woken (after a failed sync),
    and at the next retry. It only works while `leading()` says this process leads."""

    def __init__(self, core: Core, notifier: Callable[[], Notifier], *, interval: float,
                 leading: Callable[[], bool] = lambda: True) -> None:
        self.core = core
        self.notifier = notifier
        self.interval = interval
        self.leading = leading
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="alarms")

    async def settled(self) -> None:
        """Wait until one round after now has finished (tests, graceful shutdown)."""
        self.wake()
        await self._idle.wait()

    async def run_once(self) -> int:
        """One sweep and delivery round (a no-op on a replica that does not lead)."""
        if not self.leading():
            return 0
        await sweep(self.core)
        return await deliver_due(self.core, self.notifier())

    async def _loop(self) -> None:
        while True:
            timeout = self.interval
            try:
                self._wake.clear()
                await self.run_once()
                due = await next_due(self.core)
                if due is not None and self.leading():
                    timeout = min(timeout, max((due - self.core.clock()).total_seconds(), 0.05))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("alarm round failed", extra={"error": type(exc).__name__})
            if not self._wake.is_set():
                self._idle.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
