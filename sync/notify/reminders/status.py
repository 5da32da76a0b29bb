"""Reminder health for `status`: what is waiting, retrying or failed, per practice or practitioner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.core import Core
from sync.store.model import Practitioner, ReminderLedger

__all__ = ["ReminderStatus", "reminder_status"]


@dataclass(frozen=True, slots=True)
class ReminderStatus:
    planned: int
    retrying: int
    #: Failed, dropped or left unknown within the look-back window.
    failed: int
    dropped: int
    unknown: int
    next_due: datetime | None
    last_error: str | None

    @property
    def healthy(self) -> bool:
        return self.retrying == 0 and self.failed == 0 and self.unknown == 0

    def describe(self) -> str:
        """One line for the `status` view."""
        parts = [f"{self.planned} reminders planned"]
        if self.retrying:
            parts.append(f"{self.retrying} retrying")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.dropped:
            parts.append(f"{self.dropped} missed while down")
        if self.unknown:
            parts.append(f"{self.unknown} possibly not delivered")
        if self.last_error:
            parts.append(f"last error: {self.last_error[:120]}")
        return ", ".join(parts)


async def reminder_status(
    session: AsyncSession,
    now: datetime,
    *,
    practice_id: int | None = None,
    practitioner_id: int | None = None,
    look_back: timedelta = timedelta(days=1),
) -> ReminderStatus:
    """Counts by status for one practice or practitioner (failures within `look_back`)."""
    stmt = select(ReminderLedger.status, func.count()).group_by(ReminderLedger.status)
    if practitioner_id is not None:
        stmt = stmt.where(ReminderLedger.practitioner_id == practitioner_id)
    elif practice_id is not None:
        people = select(Practitioner.id).where(Practitioner.practice_id == practice_id)
        stmt = stmt.where(ReminderLedger.practitioner_id.in_(people))
    recent = ReminderLedger.fire_at >= now - look_back
    open_rows = ReminderLedger.status.in_(("planned", "retry"))
    counts = dict((await session.execute(stmt.where(open_rows | recent))).tuples().all())
    scope = stmt.whereclause
    nxt = select(func.min(ReminderLedger.next_attempt_at)).where(open_rows)
    err = (
        select(ReminderLedger.last_error)
        .where(ReminderLedger.last_error.is_not(None), recent)
        .order_by(ReminderLedger.id.desc())
        .limit(1)
    )
    if scope is not None:
        nxt, err = nxt.where(scope), err.where(scope)
    return ReminderStatus(
        planned=counts.get("planned", 0),
        retrying=counts.get("retry", 0),
        failed=counts.get("failed", 0),
        dropped=counts.get("dropped", 0),
        unknown=counts.get("unknown", 0),
        next_due=await session.scalar(nxt),
        last_error=await session.scalar(err),
    )


async def practice_reminder_status(core: Core, practice_id: int) -> ReminderStatus:
    """`reminder_status` of one practice at the core's now, in a transaction of its own (for front ends)."""
    async with core.store.session() as session:
        return await reminder_status(session, core.clock(), practice_id=practice_id)
