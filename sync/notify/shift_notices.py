"""An appointment booked outside every shift of its practitioner raises a card to staff.

A practitioner with published shifts works inside them: the slot finder offers only times inside a
shift, but a booking platform or a calendar can still put a visit elsewhere. When an appointment is
created or moved to a future time, and its practitioner has shifts within a day of it but none
that holds the whole visit, a staff notice is queued in the same transaction (a ConflictNotice of
kind "outside_shift", once per appointment version) and told to the staff channel after commit
through the conflict notices' delivery loop. A practitioner without shifts that day is not checked:
not every practitioner works by shifts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.engine.conflict_rows import queue_outside_shift
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent
from sync.store.model import Appointment, ShiftRow

__all__ = ["SUBSCRIBER_NAME", "on_appointment_event", "on_appointment_events", "outside_every_shift", "register"]

SUBSCRIBER_NAME = "shifts.outside"
#: Shifts this close to a visit mean its practitioner works by shifts that day.
NEAR = timedelta(hours=24)


def register(core: Core) -> None:
    """Hook the check onto core.bus (once)."""
    if SUBSCRIBER_NAME in core.bus.names:
        return

    async def subscriber(session: AsyncSession, events: Sequence[AppointmentEvent]) -> None:
        await on_appointment_events(core, session, events)

    core.bus.subscribe_batch(SUBSCRIBER_NAME, subscriber)


async def outside_every_shift(session: AsyncSession, practitioner_id: int, start: datetime,
                              end: datetime) -> list[tuple[datetime, datetime]] | None:
    """The practitioner's shifts near [start, end) when none holds it; None when one does, or none is near."""
    return _outside(await _shifts(session, practitioner_id, start, end), start, end)


async def _shifts(session: AsyncSession, practitioner_id: int, start: datetime,
                  end: datetime) -> list[tuple[datetime, datetime]]:
    """The practitioner's live shifts near [start, end) (within NEAR), in order."""
    return list((await session.execute(select(ShiftRow.starts_at, ShiftRow.ends_at).where(
        ShiftRow.practitioner_id == practitioner_id, ShiftRow.live.is_(True),
        ShiftRow.starts_at < end + NEAR, ShiftRow.ends_at > start - NEAR,
    ).order_by(ShiftRow.starts_at))).tuples().all())


def _outside(shifts: list[tuple[datetime, datetime]], start: datetime,
             end: datetime) -> list[tuple[datetime, datetime]] | None:
    """Of `shifts` (in order), those near [start, end) when none holds it; None when one does, or none is near."""
    rows = [(s, e) for s, e in shifts if s < end + NEAR and e > start - NEAR]
    if not rows:
        return None
    # Back-to-back shifts (a day and a night) hold a visit across their seam.
    merged: list[tuple[datetime, datetime]] = []
    for s, e in rows:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    if any(s <= start and end <= e for s, e in merged):
        return None
    return rows


async def on_appointment_event(core: Core, session: AsyncSession, event: AppointmentEvent) -> None:
    """Queue the staff notice for a future visit booked or moved outside its practitioner's shifts."""
    await on_appointment_events(core, session, (event,))


async def on_appointment_events(core: Core, session: AsyncSession, events: Sequence[AppointmentEvent]) -> None:
    """`on_appointment_event` for a batch: each practitioner's shifts are read once, over the span of
    their visits in the batch, and a practitioner without shifts there costs that one query."""
    now = core.clock()
    visits: list[tuple[AppointmentEvent, int, datetime, datetime]] = []
    for event in events:
        if event.kind not in ("created", "rescheduled") or event.practitioner_id is None:
            continue
        start, end = event.after.get("start"), event.after.get("end")
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            appt = await session.get(Appointment, event.appointment_id)
            if appt is None:
                continue
            start, end = appt.start, appt.end
        if start.tzinfo is None or end.tzinfo is None or start <= now:
            continue
        visits.append((event, event.practitioner_id, start, end))
    spans: dict[int, tuple[datetime, datetime]] = {}
    for _, pid, start, end in visits:
        lo, hi = spans.get(pid, (start, end))
        spans[pid] = (min(lo, start), max(hi, end))
    shifts = {pid: await _shifts(session, pid, lo, hi) for pid, (lo, hi) in spans.items()}
    for event, pid, start, end in visits:
        if shifts[pid] and _outside(shifts[pid], start, end) is not None:
            await queue_outside_shift(session, core, practice_id=event.practice_id,
                                      appointment_id=event.appointment_id, version=event.version)
