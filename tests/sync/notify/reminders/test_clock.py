"""Reminders fire at the right local times (DST included), move or vanish with their appointment,
and are sent once: driven by a controllable clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from sync.notify.reminders import apply_reminder_command, plan_upcoming, reminder_status
from sync.services import appointments
from sync.store.model import Appointment, Practitioner, ReminderLedger

from .conftest import World


def _local_times(world: World, kind: str = "reminder") -> list[tuple[str, int]]:
    return [
        (t.astimezone(world.zone).strftime("%Y-%m-%d %H:%M"), n.data.get("offset_minutes", 0))
        for t, n in world.sends(kind)
    ]


@pytest.mark.parametrize(
    ("zone", "appointment", "expected"),
    [
        # Europe: clocks go forward on Sunday 2025-03-30 at 02:00.
        ("Europe/Berlin", "2025-03-30 09:00", [("2025-03-29 09:00", 1440), ("2025-03-30 08:00", 60)]),
        ("Europe/Berlin", "2025-03-31 09:00", [("2025-03-30 09:00", 1440), ("2025-03-31 08:00", 60)]),
        # Europe: clocks go back on Sunday 2025-10-26 at 03:00 (the 24 h reminder is 25 real hours ahead).
        ("Europe/Berlin", "2025-10-26 09:00", [("2025-10-25 09:00", 1440), ("2025-10-26 08:00", 60)]),
        # US: clocks go forward on Sunday 2025-03-09 at 02:00.
        ("America/New_York", "2025-03-10 09:00", [("2025-03-09 09:00", 1440), ("2025-03-10 08:00", 60)]),
        # The 1 h reminder crosses the skipped hour: real time, so 01:30 local -> 03:30 is 1 h.
        ("Europe/Berlin", "2025-03-30 03:30", [("2025-03-29 03:30", 1440), ("2025-03-30 01:30", 60)]),
    ],
)
async def test_reminders_fire_at_local_wall_times_across_dst(
    world: World, zone: str, appointment: str, expected: list[tuple[str, int]]
) -> None:
    world.zone = ZoneInfo(zone)
    world.clock.now = datetime.fromisoformat(appointment).replace(tzinfo=world.zone) - timedelta(days=5)
    async with world.core.store.session() as s:
        person = await s.get(Practitioner, world.practitioner_id)
        assert person is not None
        await apply_reminder_command(s, person, f"remind tz {zone}", clock=world.clock)
    await world.book(appointment)
    await world.run_until(world.local(appointment) + timedelta(hours=2))
    assert _local_times(world) == expected


async def test_24h_before_dst_is_23_real_hours(world: World) -> None:
    world.clock.now = datetime(2025, 3, 25, tzinfo=UTC)
    await world.book("2025-03-30 09:00")
    await world.run_until(datetime(2025, 3, 31, tzinfo=UTC))
    (first, note), _ = world.sends()
    assert note.data["offset_minutes"] == 1440
    assert world.local("2025-03-30 09:00") - first == timedelta(hours=23)


async def test_reschedule_moves_reminders_at_once(world: World) -> None:
    world.clock.now = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)
    appt_id = await world.book("2025-04-03 10:00")
    async with world.core.store.session() as s:
        appt = await s.get(Appointment, appt_id)
        assert appt is not None
        await appointments.reschedule(s, world.core.bus, appt, world.local("2025-04-04 15:00"), None, "test")
    async with world.core.store.session() as s:
        open_rows = (await s.scalars(select(ReminderLedger).where(ReminderLedger.status == "planned"))).all()
        assert sorted(r.fire_at for r in open_rows) == [
            world.local("2025-04-03 15:00").astimezone(UTC),
            world.local("2025-04-04 14:00").astimezone(UTC),
        ]
    await world.run_until(datetime(2025, 4, 5, tzinfo=UTC))
    assert _local_times(world) == [("2025-04-03 15:00", 1440), ("2025-04-04 14:00", 60)]


async def test_cancelled_appointment_gets_no_reminder(world: World) -> None:
    world.clock.now = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)
    appt_id = await world.book("2025-04-03 10:00")
    other = await world.book("2025-04-03 11:00")
    async with world.core.store.session() as s:
        appt = await s.get(Appointment, appt_id)
        assert appt is not None
        await appointments.cancel(s, world.core.bus, appt, "patient sick", "test")
        open_rows = await s.scalar(
            select(func.count()).select_from(ReminderLedger).where(ReminderLedger.appointment_id == appt_id)
        )
        assert open_rows == 0
    await world.run_until(datetime(2025, 4, 4, tzinfo=UTC))
    assert {n.appointment_ids for _, n in world.sends()} == {(other,)}


async def test_change_without_event_is_caught_at_fire_time(world: World) -> None:
    """A job re-reads the appointment: moved or cancelled behind the bus's back, it is not reminded."""
    world.clock.now = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)
    moved = await world.book("2025-04-03 10:00")
    cancelled = await world.book("2025-04-03 12:00")
    async with world.core.store.session() as s:
        a = await s.get(Appointment, moved)
        b = await s.get(Appointment, cancelled)
        assert a is not None and b is not None
        a.start, a.end = world.local("2025-04-03 16:00"), world.local("2025-04-03 16:30")
        b.status = "cancelled"
    await world.run_until(world.local("2025-04-02 13:00"))  # both old 24 h times have passed
    assert world.sends() == []
    async with world.core.store.session() as s:
        stale = await s.scalar(
            select(func.count()).select_from(ReminderLedger).where(ReminderLedger.status == "stale")
        )
        assert stale == 2
        # The dispatcher replanned the moved appointment when its old row went stale; the sweep adds nothing.
        await plan_upcoming(s, world.clock())
    await world.run_until(datetime(2025, 4, 4, tzinfo=UTC))
    assert _local_times(world) == [("2025-04-02 16:00", 1440), ("2025-04-03 15:00", 60)]
    assert {n.appointment_ids for _, n in world.sends()} == {(moved,)}


async def test_missed_while_down_sent_once_late_or_dropped(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.clock.now = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)
    await world.book("2025-04-02 12:00")  # 24 h at 04-01 12:00 local, 1 h at 04-02 11:00 local
    # Down from 04-01 11:50 to 04-01 12:10 local: within the 15 min grace.
    world.clock.now = world.local("2025-04-01 12:10").astimezone(UTC)
    await world.dispatcher.run_due()
    await world.dispatcher.run_due()
    [(_, late)] = world.sends()
    assert late.data["late"] is True and late.data["offset_minutes"] == 1440
    # Down from 04-02 10:50 to 04-02 11:30: beyond the grace, so dropped and logged, never sent.
    world.clock.now = world.local("2025-04-02 11:30").astimezone(UTC)
    with caplog.at_level(logging.WARNING, logger="clinicbot.reminders"):
        await world.dispatcher.run_due()
    assert len(world.sends()) == 1
    assert "dropped" in caplog.text
    async with world.core.store.session() as s:
        statuses = sorted((await s.scalars(select(ReminderLedger.status))).all())
    assert statuses == ["dropped", "sent"]


async def test_failed_send_retried_with_backoff_and_shown_in_status(world: World) -> None:
    world.clock.now = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)
    await world.book("2025-04-01 14:00")  # only the 1 h reminder is still ahead: 13:00 local
    world.notifier.fail_next = 2
    fire = world.local("2025-04-01 13:00").astimezone(UTC)
    world.clock.now = fire
    report = await world.dispatcher.run_due()
    assert report.retried == 1 and world.sends() == []
    async with world.core.store.session() as s:
        status = await reminder_status(s, world.clock(), practitioner_id=world.practitioner_id)
        row = await s.scalar(select(ReminderLedger))
    assert status.retrying == 1 and "503" in (status.last_error or "")
    assert row is not None and row.next_attempt_at == fire + timedelta(seconds=30)
    await world.run_until(fire + timedelta(seconds=31))  # second failure: backoff doubles
    async with world.core.store.session() as s:
        row = await s.scalar(select(ReminderLedger))
    assert row is not None and row.attempts == 2 and row.next_attempt_at == fire + timedelta(seconds=30 + 60)
    await world.run_until(fire + timedelta(minutes=5))
    assert len(world.sends()) == 1
    async with world.core.store.session() as s:
        row = await s.scalar(select(ReminderLedger))
        status = await reminder_status(s, world.clock(), practitioner_id=world.practitioner_id)
    assert row is not None and (row.status, row.attempts) == ("sent", 3)
    assert status.healthy


async def test_each_reminder_sent_once_even_if_dispatch_runs_twice(world: World) -> None:
    world.clock.now = datetime(2025, 4, 1, 6, 0, tzinfo=UTC)
    for hour in (10, 11, 12):
        await world.book(f"2025-04-02 {hour}:00")
    world.clock.now = datetime(2025, 4, 2, 6, 30, tzinfo=UTC)  # after every 24 h time, before any 1 h time
    world.dispatcher.grace = timedelta(days=2)
    await world.dispatcher.run_due()
    await world.dispatcher.run_due()
    keys = [n.data["delivery_key"] for _, n in world.notifier.sent]
    assert len(keys) == 3 and len(set(keys)) == 3


async def test_sender_death_mid_send_is_settled_by_delivery_check(world: World) -> None:
    world.clock.now = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)
    delivered_id = await world.book("2025-04-01 14:00")
    lost_id = await world.book("2025-04-01 15:00")
    async with world.core.store.session() as s:  # as a killed leader leaves them
        for row in (await s.scalars(select(ReminderLedger))).all():
            row.status, row.attempts = "sending", 1
    delivered_key = f"{delivered_id}:reminder:60:"

    class Checking:
        async def notify(self, n: object) -> None:
            await world.notifier.notify(n)  # type: ignore[arg-type]

        async def was_delivered(self, n: object) -> bool | None:
            return str(n.data["delivery_key"]).startswith(delivered_key)  # type: ignore[attr-defined]

    world.core.services.notifier = Checking()
    assert await world.dispatcher.recover_in_doubt() == 2
    await world.run_until(datetime(2025, 4, 2, tzinfo=UTC))
    assert [n.appointment_ids for _, n in world.sends()] == [(lost_id,)]
    # Without a delivery check, at most once: the row is marked unknown, not resent.
    async with world.core.store.session() as s:
        row = await s.scalar(select(ReminderLedger).where(ReminderLedger.appointment_id == lost_id))
        assert row is not None
        row.status = "sending"
    world.core.services.notifier = world.notifier
    await world.dispatcher.recover_in_doubt()
    async with world.core.store.session() as s:
        status = await reminder_status(s, world.clock(), practice_id=world.practice_id)
    assert status.unknown == 1 and not status.healthy
