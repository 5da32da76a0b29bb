"""The APScheduler side, in real time: reminders sent by the leader, periodic jobs by reference,
no synchronous database call on the event loop, and the PostgreSQL leader lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import traceback
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sync.jobs.scheduler import (
    DISPATCH_ID,
    PLAN_ID,
    POLL_ID,
    ClinicScheduler,
)
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent
from sync.runtime.leader import LeaderLock
from sync.runtime.notifier import RecordingNotifier
from sync.services.practices import add_practitioner, create_practice
from sync.store.model import Appointment


def _job_ids(scheduler: ClinicScheduler) -> set[str]:
    aps = scheduler._aps
    return {job.id for job in aps.get_jobs()} if aps is not None else set()


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
        ids = _job_ids(scheduler)
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


async def test_the_scheduler_never_calls_the_database_from_the_event_loop(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A synchronous database call made on the loop's thread stops the whole bot (every ack and
    answer) for as long as the database takes: a slow commit, a lock. Leadership, the jobs' runs and
    re-arming (after every commit that plans a reminder) must leave the database to the async
    engine. Here every synchronous connect made on the loop's thread from the scheduler's code is
    recorded (APScheduler's persistent store made one at start and after each run)."""
    loop_thread = threading.get_ident()
    made: list[str] = []

    def watch(connect: Any) -> Any:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread:
                frames = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()]
                if any("apscheduler" in f or "sync/jobs/" in f for f in frames):
                    made.append(" <- ".join(reversed(frames[-6:])))
            return connect(*args, **kwargs)
        return recorded

    monkeypatch.setattr(sqlite3, "connect", watch(sqlite3.connect))
    monkeypatch.setattr(sqlite3.dbapi2, "connect", watch(sqlite3.dbapi2.connect))  # what SQLAlchemy calls
    try:
        import psycopg
    except ImportError:
        pass
    else:
        monkeypatch.setattr(psycopg, "connect", watch(psycopg.connect))
    scheduler = ClinicScheduler(core, leader_poll=0.1, due_poll=1.0)
    scheduler.add_periodic("tick", 1, _tick)
    await scheduler.start()
    try:
        await _wait_for(lambda: scheduler.is_leader)
        for k in range(20):  # what a sync page that planned reminders does after its commit
            scheduler.wake(datetime.now(UTC) + timedelta(minutes=30 - k))
        await _wait_for(lambda: len(_TICKS.get(id(core), [])) >= 2)
        assert {POLL_ID, PLAN_ID, "clinicbot.periodic.tick"} <= _job_ids(scheduler)
    finally:
        await scheduler.stop()
    assert made == [], made


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
