"""A sync page's change events reach each domain subscriber as one batch: an import's statements do
not grow with its size, and every subscriber still does its job for every appointment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select

from sync.engine.run import sync_connection
from sync.notify.reminders.planner import ReminderSubscriber
from sync.runtime.core import Core
from sync.store.model import Appointment, ConflictNotice, ReminderLedger, ShiftRow
from tests.sync.helpers import NOW, Clinic, booking, make_clinic


@contextmanager
def _statements(core: Core) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = core.store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def _shift_day_one(clinic: Clinic) -> None:
    """Dr Lee works 08:00-16:00 the day after NOW: a visit that day outside it is told to staff."""
    day = NOW + timedelta(days=1)
    async with clinic.core.store.session() as s:
        s.add(ShiftRow(practice_id=clinic.practice_id, source_id=clinic.connections["source"], shift_key="d1",
                       person_name="Lee", assignment="Clinic", starts_at=day, ends_at=day + timedelta(hours=8),
                       practitioner_id=clinic.practitioner_id))


async def _sync_new(clinic: Clinic, start: int, count: int, *, outside_every: int = 0) -> list[str]:
    """Sync `count` new 2-minute bookings (b<start>...), one after another inside the shift, every
    `outside_every`-th one after it instead; the statements the sync sent."""
    src = clinic.servers["source"]
    for i in range(start, start + count):
        outside = outside_every and i % outside_every == 0
        src.put(booking(f"b{i}", NOW + timedelta(days=1, hours=9 if outside else 1, minutes=3 * i), minutes=2))
    with _statements(clinic.core) as seen:
        report = await sync_connection(clinic.core, clinic.connections["source"])
    assert (report.created, report.conflicts, report.failed) == (count, 0, 0)
    return seen


async def _clinic(core: Core) -> Clinic:
    clinic = await make_clinic(core, {"client_notices_new": True})
    core.bus.subscribe_batch("reminders", ReminderSubscriber(clinic.clock).batch)
    await _shift_day_one(clinic)
    return clinic


async def test_an_import_costs_as_many_statements_for_80_bookings_as_for_5(core: Core) -> None:
    clinic = await _clinic(core)
    await _sync_new(clinic, 0, 5)  # the first sync also reads what later ones find cached
    small = await _sync_new(clinic, 5, 5)
    large = await _sync_new(clinic, 10, 80)
    assert len(large) == len(small), (len(small), len(large))
    async with core.store.session() as s:
        planned = (await s.scalars(select(ReminderLedger.appointment_id).distinct())).all()
    assert len(planned) == 90  # the reminder subscriber planned every one of them


async def test_every_booking_of_a_page_outside_the_shift_is_told_to_staff(core: Core) -> None:
    clinic = await _clinic(core)
    await _sync_new(clinic, 0, 60, outside_every=3)
    async with core.store.session() as s:
        told = (await s.scalars(select(ConflictNotice.appointment_id).where(ConflictNotice.kind == "outside_shift")
                                .order_by(ConflictNotice.id))).all()
        uids = dict((await s.execute(select(Appointment.id, Appointment.source_uid))).tuples().all())
    assert [uids[i] for i in told] == [f"b{i}" for i in range(0, 60, 3)]


async def test_a_paged_import_asks_what_no_page_changes_once_per_sync(core: Core) -> None:
    """The practice's locations, its notice settings and its CRM connections are read once per sync,
    not once per page (4 pages ask them as often as 1); every page's bookings still reach every subscriber."""
    clinic = await _clinic(core)
    src = clinic.servers["source"]
    src.page_size = 12
    one_page = await _sync_new(clinic, 0, 12)
    src.page_size = 3
    four_pages = await _sync_new(clinic, 12, 12)
    for asked in ("FROM location", "FROM practice", "SELECT DISTINCT connection.provider"):
        assert sum(asked in s for s in four_pages) == sum(asked in s for s in one_page) >= 1, asked
    async with core.store.session() as s:
        planned = (await s.scalars(select(ReminderLedger.appointment_id).distinct())).all()
    assert len(planned) == 24
