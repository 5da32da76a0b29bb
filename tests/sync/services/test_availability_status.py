"""Availability for chat (busy time, slot checks, next free slots) and per-connection status."""

from __future__ import annotations

from datetime import timedelta

from sync.contract import Refused
from sync.contract.items import EventData, Window
from sync.engine.outbox import run_until_idle
from sync.engine.run import sync_connection
from sync.runtime.core import Core
from sync.services.availability import busy_for, check_slot, next_free_slots
from sync.services.status import connection_status
from tests.sync.helpers import NOW, booking, make_clinic


async def test_busy_merges_appointments_and_busy_calendars(core: Core) -> None:
    clinic = await make_clinic(core)
    await clinic.add_calendar("personal", "busy")
    clinic.servers["source"].put(booking("b1", NOW + timedelta(hours=2)))  # 10:00-10:30 UTC
    await sync_connection(core, clinic.connections["source"])
    lunch = NOW + timedelta(hours=4)
    clinic.servers["personal"].put(EventData(uid="p", summary="Lunch", start=lunch, end=lunch + timedelta(hours=1)))
    busy = await busy_for(core, clinic.practitioner_id, Window(NOW, NOW + timedelta(days=1)))
    assert [(b.start - NOW, b.end - NOW) for b in busy] == [
        (timedelta(hours=2), timedelta(hours=2, minutes=30)), (timedelta(hours=4), timedelta(hours=5))]
    taken = await check_slot(core, clinic.practitioner_id, NOW + timedelta(hours=2, minutes=15),
                             NOW + timedelta(hours=3))
    assert not taken.free and len(taken.appointment_ids) == 1
    assert not (await check_slot(core, clinic.practitioner_id, lunch, lunch + timedelta(minutes=30))).free
    assert (await check_slot(core, clinic.practitioner_id, NOW + timedelta(hours=3),
                             NOW + timedelta(hours=4))).free


async def test_next_free_slots_skip_busy_time_and_stay_in_working_hours(core: Core) -> None:
    clinic = await make_clinic(core)
    # NOW is Monday 2 March 2026 08:00 UTC = 08:00 London
    clinic.servers["source"].put(booking("b1", NOW, 60))
    clinic.servers["source"].put(booking("b2", NOW + timedelta(hours=1, minutes=30), 30))
    await sync_connection(core, clinic.connections["source"])
    slots = await next_free_slots(core, clinic.practitioner_id, NOW, timedelta(minutes=30), count=3)
    assert [s - NOW for s in slots] == [timedelta(hours=1), timedelta(hours=2), timedelta(hours=2, minutes=30)]
    evening = await next_free_slots(core, clinic.practitioner_id, NOW + timedelta(hours=9, minutes=50),
                                    timedelta(minutes=30), count=1)
    assert evening == [NOW + timedelta(days=1)]  # 17:50 is too late for 30 minutes: next morning 08:00


async def test_status_shows_backlog_failures_and_cursor_age(core: Core) -> None:
    clinic = await make_clinic(core)
    clinic.servers["source"].put(booking("b1", NOW + timedelta(hours=2)))
    await sync_connection(core, clinic.connections["source"])
    by_id = {s.connection_id: s for s in await connection_status(core)}
    assert by_id[clinic.connections["mirror0"]].pending_ops == 1
    assert by_id[clinic.connections["source"]].cursor_age_seconds == 0
    clinic.servers["mirror0"].fail_next("create", Refused("read-only"))

    async def sleep(seconds: float) -> None:
        clinic.now += timedelta(seconds=seconds)
    await run_until_idle(core, sleep=sleep)
    clinic.now += timedelta(minutes=5)
    by_id = {s.connection_id: s for s in await connection_status(core)}
    mirror = by_id[clinic.connections["mirror0"]]
    assert (mirror.pending_ops, mirror.failed_ops, mirror.healthy) == (0, 1, False)
    assert "Refused" in (mirror.last_failed_error or "")
    assert by_id[clinic.connections["source"]].cursor_age_seconds == 300
    assert by_id[clinic.connections["source"]].as_dict()["healthy"] is True
