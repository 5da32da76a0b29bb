"""The APScheduler side, in real time: persistent jobs in our database, reminders sent by the
leader, periodic jobs by reference, and the PostgreSQL leader lock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from sync.jobs.scheduler import (
    DISPATCH_ID,
    PLAN_ID,
    POLL_ID,
    ClinicScheduler,
    SchedulerUnavailable,
    sync_database_url,
)
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent
from sync.runtime.leader import LeaderLock
from sync.runtime.notifier import RecordingNotifier
from sync.services.practices import add_practitioner, create_practice
from sync.store.model import Appointment


def _job_ids(core: Core) -> set[str]:
    engine = create_engine(sync_database_url(core.store.url))
    table = f'"{core.store.schema}".apscheduler_jobs' if core.store.schema else "apscheduler_jobs"
    try:
        with engine.connect() as conn:
            return set(conn.scalars(text(f"SELECT id FROM {table}")).all())  # noqa: S608
    finally:
        engine.dispose()


#: When the periodic test job ran, by core.
_TICKS: dict[int, list[datetime]] = {}


async def _tick(core: Core) -> None:
    _TICKS.setdefault(id(core), []).append(datetime.now(UTC))


async def _wait_for(predicate: object, timeout: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_leader_sends_due_reminder_and_runs_periodic_jobs(core: Core) -> None:
    notifier = RecordingNotifier()
    core.services.notifier = notifier
    scheduler = ClinicScheduler(core, leader_poll=0.2, due_poll=0.5)
    core.bus.subscribe("reminders", scheduler.subscriber)
    job_id = scheduler.add_periodic("tick", 1, _tick)
    assert job_id == "clinicbot.periodic.tick"
    await scheduler.start()
    try:
        await _wait_for(lambda: scheduler.is_leader)
        async with core.store.session() as s:
            practice = await create_practice(s, "Clinic", "UTC", "test")
            person = await add_practitioner(s, practice, "Dr Lee", email=None, tz="UTC", actor="test")
            person.reminder_prefs = {
                "offsets_minutes": [5],
                "quiet_start": None,
                "followups": False,
                "agenda_time": None,
            }
            start = datetime.now(UTC) + timedelta(minutes=5, seconds=1)
            appt = Appointment(
                practice_id=practice.id,
                practitioner_id=person.id,
                start=start,
                end=start + timedelta(minutes=30),
                status="confirmed",
                version=1,
            )
            s.add(appt)
            await s.flush()
            await core.bus.emit(
                s,
                AppointmentEvent(
                    kind="created",
                    appointment_id=appt.id,
                    version=1,
                    practice_id=practice.id,
                    practitioner_id=person.id,
                    actor="test",
                ),
            )
        await _wait_for(lambda: len(notifier.sent) == 1 and len(_TICKS.get(id(core), [])) >= 1)
        [sent] = notifier.sent
        assert sent.kind == "reminder" and sent.appointment_ids == (appt.id,)
        ids = _job_ids(core)
        assert {POLL_ID, PLAN_ID, job_id} <= ids
        assert DISPATCH_ID in ids or scheduler.is_leader  # the date job is removed between runs
    finally:
        await scheduler.stop()
    assert not scheduler.is_leader


def test_periodic_jobs_must_be_module_level_coroutines(core: Core) -> None:
    scheduler = ClinicScheduler(core)

    async def local(_core: Core) -> None:
        return None

    with pytest.raises(TypeError, match="module-level"):
        scheduler.add_periodic("local", 60, local)
    with pytest.raises(TypeError, match="async"):
        scheduler.add_periodic("sync", 60, print)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="once a second"):
        scheduler.add_periodic("fast", 0.1, _tick)


def test_job_store_url_uses_a_sync_driver() -> None:
    assert sync_database_url("sqlite+aiosqlite:////tmp/x.sqlite3") == "sqlite:////tmp/x.jobs.sqlite3"
    try:
        url = sync_database_url("postgresql+asyncpg://u:p@h:5432/db")
    except SchedulerUnavailable as exc:
        assert "psycopg" in str(exc)
    else:
        assert url == "postgresql+psycopg://u:p@h:5432/db"


@pytest.mark.postgres
async def test_advisory_lock_has_one_holder_and_passes_on(core: Core) -> None:
    if not core.store.is_postgres:
        pytest.skip("the leader lock is PostgreSQL's")
    url, schema = core.store.url, core.store.schema
    first, second, elsewhere = LeaderLock(url, schema), LeaderLock(url, schema), LeaderLock(url, schema + "x")
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert await elsewhere.try_acquire()  # another schema is another deployment
        assert await first.healthy()
        await first.release()
        assert await second.try_acquire() and await second.healthy()
    finally:
        for lock in (first, second, elsewhere):
            await lock.release()
