"""Reminders for the visits of a recurring series kept as one row (CalDAV, iCloud, ICS)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from sync.engine.recurrence import recurrence_key
from sync.notify.reminders import plan_upcoming
from sync.store.model import Appointment, ReminderLedger
from tests.sync.notify.reminders.conftest import World


async def _sweep(world: World, at: str) -> None:
    """The scheduler's periodic sweep, at local time `at`."""
    world.clock.now = max(world.clock.now, world.local(at))
    async with world.core.store.session() as s:
        await plan_upcoming(s, world.clock.now)


async def _planned(world: World, appointment_id: int) -> list[tuple[str, datetime]]:
    async with world.core.store.session() as s:
        rows = await s.scalars(select(ReminderLedger).where(ReminderLedger.appointment_id == appointment_id))
        return sorted((r.kind, r.fire_at) for r in rows.all())


async def test_each_visit_of_a_weekly_series_gets_its_reminders_across_dst(world: World) -> None:
    """Tuesdays 09:00 since 4 March; Berlin goes to summer time on 30 March."""
    series_id = await world.book(
        "2025-03-04 09:00", 50, rrule="FREQ=WEEKLY", exdates=[], recurrence_key="", source_uid="weekly"
    )
    assert await _planned(world, series_id) == []  # the next visit (25 March) is more than 49 hours away
    await _sweep(world, "2025-03-23 12:00")
    await world.run_until(world.local("2025-03-26 12:00"))
    await _sweep(world, "2025-03-30 12:00")
    await world.run_until(world.local("2025-04-02 12:00"))
    sent = world.sends()
    assert [(t.astimezone(world.zone), n.data["offset_minutes"]) for t, n in sent] == [
        (world.local("2025-03-24 09:00"), 1440),
        (world.local("2025-03-25 08:00"), 60),
        (world.local("2025-03-31 09:00"), 1440),  # summer time now: still 09:00 on the wall
        (world.local("2025-04-01 08:00"), 60),
    ]
    assert all(n.appointment_ids == (series_id,) for _, n in sent)
    visits = [datetime.fromisoformat(n.data["visit_start"]).astimezone(world.zone) for _, n in sent]
    assert visits == [world.local("2025-03-25 09:00")] * 2 + [world.local("2025-04-01 09:00")] * 2


async def test_a_skipped_visit_gets_none_and_a_moved_one_gets_them_at_its_new_time(world: World) -> None:
    skipped = world.local("2025-03-25 09:00").astimezone(UTC).isoformat()
    series_id = await world.book(
        "2025-03-04 09:00", 50, rrule="FREQ=WEEKLY", exdates=[skipped], recurrence_key="", source_uid="weekly"
    )
    moved_from = world.local("2025-04-01 09:00")
    moved_id = await world.book(
        "2025-04-01 15:00", 50, source_uid="weekly", recurrence_key=recurrence_key(moved_from), exdates=[]
    )
    await _sweep(world, "2025-03-23 12:00")
    assert await _planned(world, series_id) == []  # 25 March is skipped
    await _sweep(world, "2025-03-30 18:00")
    await world.run_until(world.local("2025-04-02 12:00"))
    sent = [(t.astimezone(world.zone), n.appointment_ids[0]) for t, n in world.sends()]
    assert sent == [(world.local("2025-03-31 15:00"), moved_id), (world.local("2025-04-01 14:00"), moved_id)]
    assert series_id not in {a for _, a in sent}


async def test_a_cancelled_series_sends_nothing_more(world: World) -> None:
    series_id = await world.book(
        "2025-03-04 09:00", 50, rrule="FREQ=WEEKLY", exdates=[], recurrence_key="", source_uid="weekly"
    )
    await _sweep(world, "2025-03-23 12:00")
    assert len(await _planned(world, series_id)) == 2
    async with world.core.store.session() as s:
        row = await s.get(Appointment, series_id)
        assert row is not None
        row.status = "cancelled"  # as a sync from the calendar would (no event: the dispatcher notices)
    await world.run_until(world.local("2025-03-26 12:00"))
    assert world.sends() == []
