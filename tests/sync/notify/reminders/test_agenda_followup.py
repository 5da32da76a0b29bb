"""Quiet hours, the daily agenda on working days, and follow-ups with their answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from sync.notify.reminders import answer_followup, apply_reminder_command, plan_upcoming
from sync.runtime.events import AppointmentEvent
from sync.services.appointments import AppointmentError
from sync.store.model import Appointment, AuditEntry, Practitioner

from .conftest import World


async def _remind(world: World, text: str) -> None:
    async with world.core.store.session() as s:
        person = await s.get(Practitioner, world.practitioner_id)
        assert person is not None
        await apply_reminder_command(s, person, text, clock=world.clock)


async def test_quiet_hours_move_reminders(world: World) -> None:
    world.clock.now = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)
    await _remind(world, "remind quiet 21:00-07:00")
    await world.book("2025-04-03 07:30")  # 1 h before is 06:30: quiet, moved to 07:00
    await world.book("2025-04-04 07:00")  # 1 h before is 06:00: the end of quiet is too late, so 20:59
    await world.book("2025-04-07 21:30")  # 24 h before is 21:30: moved to 07:00 the next morning
    await world.run_until(datetime(2025, 4, 8, tzinfo=UTC))
    got = sorted(
        (t.astimezone(world.zone).strftime("%m-%d %H:%M"), n.data["offset_minutes"]) for t, n in world.sends()
    )
    assert got == [
        ("04-02 07:30", 1440),
        ("04-03 07:00", 60),
        ("04-03 07:00", 1440),
        ("04-03 20:59", 60),
        ("04-07 07:00", 1440),
        ("04-07 20:30", 60),
    ]


async def test_agenda_on_working_days_at_local_time(world: World) -> None:
    world.clock.now = datetime(2025, 3, 27, 20, 0, tzinfo=UTC)  # Thursday evening
    await _remind(world, "remind agenda 07:30")
    friday = await world.book("2025-03-28 10:00")
    await world.book("2025-03-31 10:00")
    for day in range(5):  # the sweep runs every minute in production; once a day is enough here
        async with world.core.store.session() as s:
            await plan_upcoming(s, world.clock())
        await world.run_until(datetime(2025, 3, 28, 20, 0, tzinfo=UTC) + timedelta(days=day))
    agendas = [
        (t.astimezone(world.zone).strftime("%a %H:%M"), n.data["date"], n.appointment_ids)
        for t, n in world.sends("agenda")
    ]
    # Working days only (an empty day still gets its agenda); from Monday on it is CEST.
    assert agendas == [
        ("Fri 07:30", "2025-03-28", (friday,)),
        ("Mon 07:30", "2025-03-31", (friday + 1,)),
        ("Tue 07:30", "2025-04-01", ()),
    ]


async def test_followup_after_the_appointment_and_its_answers(world: World) -> None:
    await _remind(world, "remind followups on")
    world.clock.now = datetime(2025, 4, 1, 6, 0, tzinfo=UTC)
    appt_id = await world.book("2025-04-01 10:00", minutes=45)
    events: list[AppointmentEvent] = []

    async def record(_s: object, e: AppointmentEvent) -> None:
        events.append(e)

    world.core.bus.subscribe("record", record)
    await world.run_until(world.local("2025-04-01 11:00"))
    [(when, note)] = world.sends("followup")
    assert when == world.local("2025-04-01 10:45")
    assert note.appointment_ids == (appt_id,) and note.data["answers"] == [
        "attended",
        "no_show",
        "book_followup",
    ]
    async with world.core.store.session() as s:
        outcome = await answer_followup(
            s, world.core.bus, world.practice_id, appt_id, "no_show", "slack:T1/U1"
        )
        assert (outcome.status, outcome.book_followup) == ("no_show", False)
        outcome = await answer_followup(
            s, world.core.bus, world.practice_id, appt_id, "book_followup", "slack:T1/U1"
        )
        assert outcome.book_followup and outcome.practitioner_id == world.practitioner_id
        with pytest.raises(AppointmentError, match="not a follow-up answer"):
            await answer_followup(s, world.core.bus, world.practice_id, appt_id, "maybe", "slack:T1/U1")
        appt = await s.get(Appointment, appt_id)
        actions = (
            await s.scalars(select(AuditEntry.action).where(AuditEntry.appointment_id == appt_id))
        ).all()
    assert appt is not None and appt.status == "no_show"
    assert [e.kind for e in events] == ["no_show"]
    assert list(actions) == ["appointment.no_show", "appointment.followup_requested"]


async def test_no_followup_for_a_cancelled_appointment(world: World) -> None:
    await _remind(world, "remind followups on")
    world.clock.now = datetime(2025, 4, 1, 6, 0, tzinfo=UTC)
    appt_id = await world.book("2025-04-01 10:00")
    async with world.core.store.session() as s:
        appt = await s.get(Appointment, appt_id)
        assert appt is not None
        appt.status = "cancelled"  # behind the bus's back: caught at fire time
    await world.run_until(world.local("2025-04-01 12:00") + timedelta(hours=1))
    assert world.notifier.sent == []
