"""Telling staff about conflicts: a ConflictNotice row per conflict, written in the sync
transaction, delivered through the Notifier after that transaction commits.

- At most once: the row's unique `dedupe_key` is (link, remote version) for a hand-edited mirror
  copy and (appointment, version, other appointment) for a double booking, so the same conflict
  read twice is told once. A delivery claims its row (pending -> sending) with a conditional
  UPDATE before it sends, so two replicas never send the same row; a process that dies mid-send
  leaves the row in "sending" (not re-sent; `conflicts` in chat still lists the conflict).
- Retries: a retryable DeliveryError puts the row back to pending with backoff; a final one
  marks it failed. Logs carry the notice id, kind and error class, never patient data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update

from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification, Notifier
from sync.store.model import ConflictNotice

__all__ = [
    "MAX_ATTEMPTS",
    "WAKE_SERVICE",
    "ConflictNoticeWorker",
    "deliver_due",
    "notification_for",
    "queue_double_booking",
    "queue_mirror_conflict",
]

from sync.engine.conflict_rows import queue_double_booking, queue_mirror_conflict

log = logging.getLogger("clinicbot.conflicts")

#: core.services key: a zero-argument callable that wakes the delivery loop.
WAKE_SERVICE = "conflict_notices.wake"
MAX_ATTEMPTS = 6
BASE_DELAY = 30.0


def notification_for(notice: ConflictNotice) -> Notification:
    """The platform-free Notification for one notice (ids only; views are read at send time)."""
    appts = (notice.appointment_id,) + ((notice.other_appointment_id,) if notice.other_appointment_id else ())
    if notice.kind == "outside_shift":
        # Told, not decided: the card is the appointment with the practitioner's shifts beside it.
        return Notification(kind="outside_shift", practice_id=notice.practice_id, audience="staff",
                            appointment_ids=appts, data={"conflict_id": notice.id})
    return Notification(
        kind="double_booking" if notice.kind == "double_booking" else "conflict",
        practice_id=notice.practice_id, audience="staff", appointment_ids=appts,
        data={"conflict_id": notice.id},
    )


async def _claim(core: Core, notice_id: int, now: datetime) -> ConflictNotice | None:
    async with core.store.session() as s:
        claimed = await s.execute(
            update(ConflictNotice)
            .where(ConflictNotice.id == notice_id, ConflictNotice.status == "pending")
            .values(status="sending", attempts=ConflictNotice.attempts + 1)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return None
        return await s.get(ConflictNotice, notice_id)


async def _finish(core: Core, notice_id: int, attempts: int, error: DeliveryError | None) -> None:
    now = core.clock()
    values: dict[str, object]
    if error is None:
        values = {"status": "sent", "sent_at": now, "last_error": None}
    elif error.retryable and attempts < MAX_ATTEMPTS:
        delay = BASE_DELAY * 2 ** (attempts - 1)
        values = {"status": "pending", "next_attempt_at": now + timedelta(seconds=delay),
                  "last_error": str(error)[:300]}
    else:
        values = {"status": "failed", "last_error": str(error)[:300]}
    async with core.store.session() as s:
        await s.execute(update(ConflictNotice).where(ConflictNotice.id == notice_id).values(**values))


async def deliver_due(core: Core, notifier: Notifier, limit: int = 50) -> int:
    """Send every due pending notice once; returns how many were delivered."""
    now = core.clock()
    async with core.store.session() as s:
        ids = list((await s.scalars(
            select(ConflictNotice.id)
            .where(ConflictNotice.status == "pending", ConflictNotice.next_attempt_at <= now)
            .order_by(ConflictNotice.id).limit(limit))).all())
    sent = 0
    for notice_id in ids:
        notice = await _claim(core, notice_id, now)
        if notice is None:
            continue  # another replica (or loop round) has it
        error: DeliveryError | None = None
        try:
            await notifier.notify(notification_for(notice))
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # an unexpected bug in a sender: keep the row, retry later
            error = DeliveryError(f"unexpected {type(exc).__name__}")
        await _finish(core, notice_id, notice.attempts, error)
        if error is None:
            sent += 1
            log.info("conflict notice sent", extra={"notice_id": notice_id, "kind": notice.kind})
        else:
            log.warning("conflict notice not delivered", extra={
                "notice_id": notice_id, "kind": notice.kind, "attempts": notice.attempts,
                "retryable": error.retryable, "error": str(error)[:200]})
    return sent


async def next_due(core: Core) -> datetime | None:
    """When the earliest pending notice falls due."""
    async with core.store.session() as s:
        due: datetime | None = await s.scalar(
            select(ConflictNotice.next_attempt_at).where(ConflictNotice.status == "pending")
            .order_by(ConflictNotice.next_attempt_at).limit(1))
        return due


class ConflictNoticeWorker:
    """The delivery loop: woken after a sync transaction that queued notices commits, and by backoff."""

    def __init__(
        self, core: Core, notifier: Callable[[], Notifier], idle_seconds: float = 30.0, stop_grace: float = 10.0
    ) -> None:
        self.core = core
        self.notifier = notifier
        self.idle_seconds = idle_seconds
        self.stop_grace = stop_grace
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def start(self) -> None:
        self.core.services.conflict_notices_wake = self.wake
        self._task = asyncio.create_task(self._loop(), name="conflict-notices")

    async def settled(self) -> None:
        """Wait until the loop has nothing due (tests, graceful shutdown)."""
        self.wake()
        await self._idle.wait()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            timeout = self.idle_seconds
            try:
                self._wake.clear()
                await deliver_due(self.core, self.notifier())
                due = await next_due(self.core)
                if due is not None:
                    timeout = min(timeout, max((due - self.core.clock()).total_seconds(), 0.05))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("conflict notice round failed", extra={"error": type(exc).__name__})
            if not self._wake.is_set():
                self._idle.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def stop(self) -> None:
        """Stop between rounds: a round in progress finishes (up to `stop_grace` seconds, then it is
        cancelled), so a delivery is not cut off inside its database transaction."""
        if self.core.services.conflict_notices_wake == self.wake:
            del self.core.services.conflict_notices_wake
        if self._task is not None:
            self._stopping.set()
            self._wake.set()
            _, late = await asyncio.wait({self._task}, timeout=self.stop_grace)
            if late:
                log.warning("stopping cancels a conflict notice round still running after the grace period",
                            extra={"grace_seconds": self.stop_grace})
                self._task.cancel()
                await asyncio.wait({self._task})
            self._task = None
