"""What last changed an appointment, told plainly: "Moved by its feed Lee bookings on Tue 3 Mar 08:00".

Read from the audit trail, so it says what happened, not what clinicbot last wrote: a feed or a
calendar that moved or cancelled a booking (clinicbot only follows a read-only feed; it never
changes one) is named as the one that did it. Chat shows it on the appointment's card.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.store.model import AuditEntry, Calendar

__all__ = ["SourceChange", "last_source_change"]

#: The sync engine's audit actor: changes it made because a source calendar or platform said so.
_SYNC_ACTOR = "system:sync"
_VERBS = {"appointment.rescheduled": "moved", "appointment.updated": "changed", "appointment.cancelled": "cancelled"}


@dataclass(frozen=True, slots=True)
class SourceChange:
    """The newest change to an appointment, when its source made it."""

    verb: str  # moved | changed | cancelled
    calendar: str
    read_only: bool
    at: datetime
    #: The start before a move (None when it did not move or is unknown).
    was_start: datetime | None = None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


#: `last_source_change`'s statement, built once (every details card runs it).
_NEWEST = (select(AuditEntry)
           .where(AuditEntry.appointment_id == bindparam("appointment_id"), AuditEntry.action.in_(tuple(_VERBS)))
           .order_by(AuditEntry.seq.desc()).limit(1))


async def last_source_change(session: AsyncSession, appointment_id: int) -> SourceChange | None:
    """The appointment's newest change, when its source calendar made it (a read-only feed's move,
    a booking platform's cancel ...); None when the newest change was made in clinicbot or there is none."""
    entry = await session.scalar(_NEWEST, {"appointment_id": appointment_id})
    if entry is None or entry.actor != _SYNC_ACTOR:
        return None
    calendar_id = (entry.details or {}).get("calendar_id")
    cal = await session.get(Calendar, calendar_id) if isinstance(calendar_id, int) else None
    return SourceChange(
        verb=_VERBS[entry.action], calendar=(cal.name if cal is not None else "") or "its calendar",
        read_only=bool(cal is not None and cal.read_only), at=entry.at,
        was_start=_moment((entry.before or {}).get("start")) if entry.action == "appointment.rescheduled" else None,
    )
