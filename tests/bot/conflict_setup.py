"""A hand-edited mirror copy in the front-end tests' clinic: a memory source and mirror calendar
for Dr Lee, one booking synced and copied, then the copy moved by hand and read back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from sync.engine.outbox import run_until_idle
from sync.engine.run import sync_connection
from sync.engine.subscriber import register
from sync.runtime.core import Core
from sync.store.model import ConflictNotice, Link
from tests.bot.clinic import Clinic, at
from tests.sync.helpers import Clinic as Calendars
from tests.sync.helpers import booking

__all__ = ["BOOKED", "HandEdit", "hand_edited", "notices"]

#: Thursday 5 March 2026, 14:00 London: clear of the seeded appointments.
BOOKED = at(14, day=5)


@dataclass
class HandEdit:
    calendars: Calendars
    remote_id: str  # the copy on mirror0
    appointment_id: int
    link_id: int

    @property
    def mirror(self):  # type: ignore[no-untyped-def]
        return self.calendars.servers["mirror0"]

    @property
    def source(self):  # type: ignore[no-untyped-def]
        return self.calendars.servers["source"]


async def hand_edited(core: Core, clinic: Clinic, *, hours: int = 1) -> HandEdit:
    """Sync one booking to the mirror, then move its copy by `hours` by hand and sync the mirror."""
    cals = Calendars(core, practice_id=clinic.practice_id, practitioner_id=clinic.lee)
    core.services.provider_factory = cals.factory
    await cals.add_calendar("source", "source")
    await cals.add_calendar("mirror0", "mirror")
    register(core)
    cals.servers["source"].put(booking("b0", BOOKED))
    await sync_connection(core, cals.connections["source"], wait=10)
    await run_until_idle(core)
    (rid, item), = cals.servers["mirror0"].items.items()
    cals.servers["mirror0"].put(item.event.with_changes(
        start=item.event.start + timedelta(hours=hours), end=item.event.end + timedelta(hours=hours)), rid)
    report = await sync_connection(core, cals.connections["mirror0"], wait=10)
    assert report.conflicts == 1
    async with core.store.session() as s:
        link = (await s.scalars(select(Link).where(Link.state == "conflict"))).one()
    return HandEdit(cals, rid, link.appointment_id, link.id)


async def notices(core: Core) -> list[ConflictNotice]:
    async with core.store.session() as s:
        return list((await s.scalars(select(ConflictNotice).order_by(ConflictNotice.id))).all())
