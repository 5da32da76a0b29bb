"""A demo practice for trying clinicbot: two practitioners and a day of appointments.

`clinicbot demo` (or `make demo`) runs this so that a first `today` in the Teams playground or in
Slack shows a real agenda, with buttons that work, before any calendar is connected. The
appointments are booked in clinicbot itself (no source calendar), so moving and cancelling them
from chat writes nowhere else. The names are obviously made up: nothing here looks like a patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.services.practices import _untouched_default, add_practitioner, check_zone, create_practice, find_practitioner
from sync.store import audit
from sync.store.model import Appointment, Practice, Practitioner

__all__ = ["DEMO_PRACTICE", "DemoDay", "create_demo", "is_fresh_install"]

DEMO_PRACTICE = "Demo Clinic"
#: (name, handle) of the two demo practitioners.
_PEOPLE = (("Dr Ada Demo", "dr-demo"), ("Dr Ben Sample", "dr-sample"))
#: (practitioner index, local start, minutes, client, service) of the day's bookings.
_DAY = (
    (0, time(9, 0), 30, "Sample Client A", "Check-up"),
    (1, time(9, 30), 45, "Sample Client B", "Physiotherapy"),
    (0, time(10, 0), 30, "Sample Client C", "Follow-up"),
    (0, time(11, 30), 60, "Sample Client D", "First visit"),
    (1, time(11, 0), 30, "Sample Client E", "Check-up"),
    (1, time(14, 0), 45, "Sample Client F", "Physiotherapy"),
    (0, time(15, 0), 30, "Sample Client G", "Follow-up"),
    (1, time(16, 30), 30, "Sample Client H", "Check-up"),
)


@dataclass(frozen=True, slots=True)
class DemoDay:
    """What `create_demo` left: the practice, its practitioners, and the day's appointment ids."""

    practice_id: int
    practice: str
    timezone: str
    day: date
    practitioners: tuple[str, ...]
    appointment_ids: tuple[int, ...]
    created: bool  # False: the day was there already and nothing was added


async def create_demo(session: AsyncSession, *, tz: str, now: datetime, actor: str) -> DemoDay:
    """Create (or complete) the demo practice and book its day `now` falls on, in zone `tz`.

    Run again on the same day it adds nothing; on a later day it books that day too.
    """
    practice = await session.scalar(select(Practice).where(Practice.name == DEMO_PRACTICE))
    if practice is None:
        practice = await create_practice(session, DEMO_PRACTICE, check_zone(tz), actor)
    zone = ZoneInfo(practice.timezone)
    people: list[Practitioner] = []
    for name, handle in _PEOPLE:
        found = await find_practitioner(session, practice.id, handle)
        if found is None:
            found = await add_practitioner(session, practice, name, email=None, tz=None, actor=actor, handle=handle)
        people.append(found)
    day = now.astimezone(zone).date()
    uids = [f"demo-{day.isoformat()}-{i}" for i in range(len(_DAY))]
    existing = (
        await session.scalars(
            select(Appointment.id).where(
                Appointment.practice_id == practice.id, Appointment.source_uid.in_(uids)
            ).order_by(Appointment.id)
        )
    ).all()
    created = not existing
    ids = list(existing)
    if created:
        rows = []
        for uid, (who, start, minutes, client, service) in zip(uids, _DAY, strict=True):
            begins = datetime.combine(day, start, zone)
            rows.append(
                Appointment(
                    practice_id=practice.id, practitioner_id=people[who].id, start=begins,
                    end=begins + timedelta(minutes=minutes), tzid=practice.timezone, client_name=client,
                    service=service, status="confirmed", source_uid=uid,
                )
            )  # fmt: skip
        session.add_all(rows)
        await session.flush()
        ids = [r.id for r in rows]
        await audit.record(
            session, actor=actor, action="demo.create", practice_id=practice.id,
            after={"day": day.isoformat(), "appointments": len(rows)},
        )  # fmt: skip
    return DemoDay(
        practice_id=practice.id, practice=practice.name, timezone=practice.timezone, day=day,
        practitioners=tuple(p.name for p in people), appointment_ids=tuple(ids), created=created,
    )  # fmt: skip


async def is_fresh_install(session: AsyncSession) -> bool:
    """True while the database holds nothing but the fresh install's unused placeholder practice."""
    return await _untouched_default(session) is not None
