"""Stopping the scheduler ends its jobs before it returns: those in progress finish, and those
still running after the grace period are cancelled and waited for. APScheduler alone only cancels
them and leaves them running, after the engine is disposed and, in tests, after the loop closed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text

from sync.jobs.scheduler import ClinicScheduler
from sync.runtime.core import Core


@dataclass
class _Gate:
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: list[str] = field(default_factory=list)


#: The held job's gate, by core (APScheduler calls jobs by reference, so the job is module-level).
_GATES: dict[int, _Gate] = {}


async def _held(core: Core) -> None:
    """A job that waits for the test to release it, then does database work."""
    gate = _GATES[id(core)]
    if gate.started.is_set():
        return  # only the first run is held
    gate.started.set()
    try:
        await gate.release.wait()
        async with core.store.session() as s:
            await s.execute(text("SELECT 1"))
        gate.outcome.append("finished")
    except asyncio.CancelledError:
        for _ in range(3):  # cleaning up takes a few turns of the loop, as a rollback would
            await asyncio.sleep(0)
        gate.outcome.append("cancelled, cleaned up")
        raise


@pytest.fixture
def gate(core: Core) -> Iterator[_Gate]:
    _GATES[id(core)] = made = _Gate()
    yield made
    _GATES.pop(id(core), None)


async def test_stop_lets_a_job_in_progress_finish(
    core: Core, gate: _Gate, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = ClinicScheduler(core, leader_poll=0.1)
    scheduler.add_periodic("held", 1, _held)
    await scheduler.start()
    try:
        await asyncio.wait_for(gate.started.wait(), 20)
    except BaseException:
        await scheduler.stop()
        raise
    stopping = asyncio.create_task(scheduler.stop())
    # The job is held: stop() cannot be done until it is released, however long we look.
    done, _ = await asyncio.wait({stopping}, timeout=0.3)
    assert not done, "stop() returned while a job was still running"
    gate.release.set()
    await stopping
    assert gate.outcome == ["finished"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_stop_cancels_a_job_past_the_grace_period_and_waits_for_it(
    core: Core, gate: _Gate, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = ClinicScheduler(core, leader_poll=0.1, stop_grace=0.05)
    scheduler.add_periodic("held", 1, _held)
    await scheduler.start()
    try:
        await asyncio.wait_for(gate.started.wait(), 20)
    finally:
        await scheduler.stop()  # never released
    assert gate.outcome == ["cancelled, cleaned up"]  # ended, cleanup included, before stop() returned
    assert any("grace period" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
