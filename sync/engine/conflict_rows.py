"""Conflict notice rows, written in the sync transaction that found the conflict.

At most once: the row's unique `dedupe_key` is (link, remote version) for a hand-edited mirror copy
and (appointment, version, other appointment) for a double booking, so the same conflict read twice
is told once. Delivery to staff (sync.notify.conflict_notices) starts after the transaction commits.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.core import Core
from sync.store.database import after_commit
from sync.store.model import ConflictNotice

__all__ = ["queue_double_booking", "queue_mirror_conflict", "queue_outside_shift"]


def _wake_after_commit(session: AsyncSession, core: Core) -> None:
    wake = core.services.conflict_notices_wake
    if callable(wake):
        after_commit(session, wake)


async def _insert(session: AsyncSession, core: Core, notice: ConflictNotice) -> bool:
    exists = await session.scalar(select(ConflictNotice.id).where(ConflictNotice.dedupe_key == notice.dedupe_key))
    if exists is not None:
        return False
    now = core.clock()
    notice.created_at = notice.next_attempt_at = now
    notice.status, notice.attempts = "pending", 0
    session.add(notice)
    await session.flush()
    _wake_after_commit(session, core)
    return True


async def queue_mirror_conflict(
    session: AsyncSession, core: Core, *, practice_id: int, link_id: int, calendar_id: int, appointment_id: int,
    remote_version: str, remote_start: datetime | None, remote_end: datetime | None,
) -> bool:
    """Queue the staff notice for a hand-edited mirror copy (once per link and remote version)."""
    version = hashlib.sha256(remote_version.encode()).hexdigest()[:20]
    return await _insert(session, core, ConflictNotice(
        practice_id=practice_id, kind="conflict", dedupe_key=f"conflict:{link_id}:{version}", link_id=link_id,
        calendar_id=calendar_id, appointment_id=appointment_id, remote_start=remote_start, remote_end=remote_end,
    ))


async def queue_double_booking(
    session: AsyncSession, core: Core, *, practice_id: int, calendar_id: int, appointment_id: int,
    version: int, other_appointment_id: int,
) -> bool:
    """Queue the staff notice for two appointments in one practitioner's slot."""
    return await _insert(session, core, ConflictNotice(
        practice_id=practice_id, kind="double_booking", calendar_id=calendar_id, appointment_id=appointment_id,
        other_appointment_id=other_appointment_id,
        dedupe_key=f"double_booking:{appointment_id}:{version}:{other_appointment_id}",
    ))


async def queue_outside_shift(session: AsyncSession, core: Core, *, practice_id: int, appointment_id: int,
                              version: int) -> bool:
    """Queue the staff notice for a visit booked outside every shift of its practitioner (once per version)."""
    return await _insert(session, core, ConflictNotice(
        practice_id=practice_id, kind="outside_shift", appointment_id=appointment_id,
        dedupe_key=f"outside_shift:{appointment_id}:{version}",
    ))
