"""Mirror backfill (issue 22, item 1): a calendar that becomes a mirror later gets every appointment
in the window, resumably after a crash, without a second copy of anything, and a mirror that syncs
again after a pause gets only what it missed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.commands import handle, parse
from bot.views import Status
from sync.boot import open_core
from sync.engine import backfill
from sync.engine.outbox import run_until_idle
from sync.engine.run import sync_connection
from sync.engine.subscriber import register
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.runtime.syncqueue import SyncQueue
from sync.services import appointments as services
from sync.services.connections import set_calendar, set_sync
from sync.services.status import backfill_progress
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, Calendar, OutboxOp, Practice
from tests.bot.clinic import make_actor
from tests.sync.helpers import NOW, Clinic, booking, make_clinic


class Crash(Exception):
    """A simulated process crash."""


@pytest.fixture
async def core(settings: Settings) -> AsyncIterator[Core]:
    c = open_core(settings)
    await upgrade(c.store)
    register(c)
    try:
        yield c
    finally:
        await c.close()


async def _clinic_with_bookings(core: Core, count: int) -> Clinic:
    """A practice whose source holds `count` bookings, synced, and a calendar that is not a mirror yet."""
    clinic = await make_clinic(core, mirrors=0)
    for i in range(count):
        clinic.servers["source"].put(booking(f"b{i}", NOW + timedelta(days=1 + i, hours=i % 5),
                                             client_name=f"Client Number{i}"))
    assert (await sync_connection(core, clinic.connections["source"])).created == count
    await clinic.add_calendar("lee", "busy")
    return clinic


async def _settle(core: Core, clinic: Clinic) -> None:
    async def sleep(seconds: float) -> None:
        clinic.now += timedelta(seconds=seconds)

    for name in clinic.connections:
        await sync_connection(core, clinic.connections[name])
    await run_until_idle(core, sleep=sleep)
    await sync_connection(core, clinic.connections["lee"])


async def _ops(core: Core, calendar_id: int) -> list[tuple[int | None, str]]:
    async with core.store.session() as s:
        return [(o.appointment_id, o.op) for o in await s.scalars(
            select(OutboxOp).where(OutboxOp.calendar_id == calendar_id).order_by(OutboxOp.id))]


async def test_a_crash_half_way_resumes_and_copies_each_appointment_once(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic = await _clinic_with_bookings(core, 5)
    lee = clinic.calendars["lee"]
    await set_calendar(core, lee, role="mirror", actor="cli:admin")
    monkeypatch.setattr(backfill, "BACKFILL_CHUNK", 2)
    chunks = 0

    def crash_after_the_first_chunk(label: str) -> None:
        nonlocal chunks
        if label == "backfill.chunk":
            chunks += 1
            if chunks == 2:
                raise Crash(label)

    core.services.fault_injector = crash_after_the_first_chunk
    report = await sync_connection(core, clinic.connections["lee"])
    core.services.fault_injector = None
    assert report.failed == 1
    (progress,) = await backfill_progress(core, clinic.practice_id)
    # Two chunks committed before the crash (the crash came after the second's commit).
    assert (progress.state, progress.total, progress.queued) == ("pending", 5, 4)

    resumed = await sync_connection(core, clinic.connections["lee"])
    assert (resumed.failed, resumed.backfilled) == (0, 1)
    await _settle(core, clinic)
    ops = await _ops(core, lee)
    assert sorted(ops) == sorted({(a, "create") for a, _ in ops}) and len(ops) == 5
    copies = sorted(i.event.clinicbot_id for i in clinic.servers["lee"].items.values())
    async with core.store.session() as s:
        ids = sorted(f"A-{i}" for i in (await s.scalars(select(Appointment.id))).all())
        done = await s.scalar(select(Calendar.backfill_state).where(Calendar.id == lee))
        audited = await s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "calendar.backfilled"))
    assert copies == ids and done == "done" and audited == 1
    assert await backfill_progress(core, clinic.practice_id) == []


async def test_sync_off_then_on_sends_only_what_the_mirror_missed(core: Core) -> None:
    clinic = await _clinic_with_bookings(core, 3)
    lee = clinic.calendars["lee"]
    await set_calendar(core, lee, role="mirror", actor="cli:admin")
    await _settle(core, clinic)
    assert len(clinic.servers["lee"].items) == 3 and len(await _ops(core, lee)) == 3

    await set_sync(core, clinic.practice_id, enabled=False, calendar_ids=[lee], actor="cli:admin")
    async with core.store.session() as s:  # a change made in chat while the mirror is off
        moved = await s.scalar(select(Appointment).order_by(Appointment.id).limit(1))
        assert moved is not None
        await services.reschedule(s, core.bus, moved, moved.start + timedelta(hours=2), None, "slack:T/U",
                                  allow_overlap=True)
        moved_id, new_start = moved.id, moved.start
    clinic.servers["source"].put(booking("b-new", NOW + timedelta(days=9), client_name="New Client"))
    await _settle(core, clinic)
    assert len(clinic.servers["lee"].items) == 3  # off: nothing reaches it

    await set_sync(core, clinic.practice_id, enabled=True, calendar_ids=[lee], actor="cli:admin")
    await _settle(core, clinic)
    copies = {i.event.clinicbot_id: i.event for i in clinic.servers["lee"].items.values()}
    assert len(copies) == 4 and copies[f"A-{moved_id}"].start == new_start
    # The two unchanged copies were left alone: one update, one create, after the first three.
    assert [op for _, op in (await _ops(core, lee))[3:]] == ["update", "create"]


async def test_status_in_chat_shows_the_backfill(core: Core) -> None:
    clinic = await _clinic_with_bookings(core, 2)
    await set_calendar(core, clinic.calendars["lee"], role="mirror", actor="cli:admin")
    async with core.store.session() as s:
        practice = await s.get(Practice, clinic.practice_id)
        assert practice is not None
        practice.slack_team_id = "T1"
    staff = await make_actor(core, "U-staff", ("staff",))
    view = await handle(core, staff, parse("status"))
    assert isinstance(view, Status)
    (label,) = [c for conn in view.connections for c in conn.calendars if c.startswith("lee")]
    assert label == "lee (mirror): existing appointments are copied here at its next sync"
    await sync_connection(core, clinic.connections["lee"])
    view = await handle(core, staff, parse("status"))
    assert isinstance(view, Status)
    (label,) = [c for conn in view.connections for c in conn.calendars if c.startswith("lee")]
    assert label == "lee (mirror): copying existing appointments: 0 of 2 written"


async def test_inside_the_server_turning_a_mirror_back_on_syncs_it_at_once(core: Core) -> None:
    clinic = await _clinic_with_bookings(core, 2)
    lee = clinic.calendars["lee"]
    await set_calendar(core, lee, role="mirror", actor="cli:admin")
    await _settle(core, clinic)
    await set_sync(core, clinic.practice_id, enabled=False, calendar_ids=[lee], actor="slack:T1/U1")
    synced: list[int] = []

    async def runner(connection_id: int) -> None:
        synced.append(connection_id)
        await sync_connection(core, connection_id)

    core.services.sync_queue = SyncQueue(runner)
    await set_sync(core, clinic.practice_id, enabled=True, calendar_ids=[lee], actor="slack:T1/U1")
    await core.services.sync_queue.drain()
    assert synced == [clinic.connections["lee"]]
    async with core.store.session() as s:  # nothing was missed: done in that one sync, nothing queued
        cal = await s.get(Calendar, lee)
        assert cal is not None and (cal.backfill_state, cal.backfill_total, cal.backfill_queued) == ("done", 2, 0)
    assert await backfill_progress(core, clinic.practice_id) == []
