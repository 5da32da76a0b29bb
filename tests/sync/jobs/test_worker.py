"""The sync worker as it runs inside the server: a requested sync imports a booking and the outbox
copies it to the mirror; a reschedule made in chat reaches the source and the mirror without any
further request, because the commit wakes the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

from sync.jobs.worker import SyncWorker
from sync.runtime.core import Core
from sync.services import appointments as appts
from sync.store.database import after_commit
from tests.sync.helpers import NOW, appointments, booking, make_clinic


async def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_worker_syncs_and_pushes_chat_changes(core: Core) -> None:
    clinic = await make_clinic(core)
    source, mirror = clinic.servers["source"], clinic.servers["mirror0"]
    source.put(booking("b1", NOW + timedelta(days=1)))
    worker = SyncWorker(core, idle_seconds=0.2, poll_seconds=0)
    await worker.start()
    try:
        worker.queue.request(clinic.connections["source"], reason="test")
        await _until(lambda: len(mirror.items) == 1)
        copy = next(iter(mirror.items.values()))
        assert copy.event.clinicbot_id is not None
        assert "Jane Roe" not in copy.event.summary  # initials projection

        [appt] = await appointments(core)
        new_start = NOW + timedelta(days=2)
        async with core.store.session() as s:
            row = await appts.get_by_ref(s, clinic.practice_id, appt.id)
            await appts.reschedule(s, core.bus, row, new_start, None, "slack:T1/U1")

        await _until(lambda: next(iter(mirror.items.values())).event.start == new_start)
        await _until(lambda: source.items["b1"].event.start == new_start)
        assert len(mirror.items) == 1 and len(source.items) == 1
    finally:
        await worker.stop()


async def test_poll_finds_connections_that_never_synced(core: Core) -> None:
    clinic = await make_clinic(core)
    worker = SyncWorker(core, poll_seconds=300)
    assert set(await worker.stale_connections()) == set(clinic.connections.values())


async def test_a_rolled_back_session_keeps_its_error_and_drops_its_wake_up(core: Core) -> None:
    """The worker's session listeners must not replace the error that caused a rollback
    (a cancellation included: that hung the server's shutdown)."""
    woken: list[str] = []
    with pytest.raises(LookupError):
        async with core.store.session() as s:
            after_commit(s, lambda: woken.append("rolled back"))
            raise LookupError("the caller's own error")
    async with core.store.session() as s:
        after_commit(s, lambda: woken.append("committed"))
    assert woken == ["committed"]


async def test_stopping_right_after_start_finishes(core: Core) -> None:
    await make_clinic(core)
    for _ in range(3):
        worker = SyncWorker(core, poll_seconds=300)
        await worker.start()
        await asyncio.sleep(0)  # both loops are inside their first database round
        await asyncio.wait_for(worker.stop(), 10)  # a swallowed cancellation never returns
