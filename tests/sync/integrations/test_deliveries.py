"""The webhook replay memory: a key is accepted once, remembered across a restart, bounded, and written
in batches: a burst of deliveries costs one transaction, a replay none."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, func, select

from sync.boot import open_core
from sync.integrations import deliveries
from sync.runtime.core import Core
from sync.store.model import Connection, WebhookDelivery


async def _connection(core: Core) -> int:
    async with core.store.session() as s:
        conn = Connection(practice_id=1, provider="square", account="M1")
        s.add(conn)
        await s.flush()
        return conn.id


async def _rows(core: Core) -> int:
    async with core.store.session() as s:
        return int(await s.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


class _Statements:
    """Counts the statements and commits the core's engine runs."""

    def __init__(self, core: Core) -> None:
        self.writes = 0
        self.reads = 0
        self.commits = 0
        self.engine = core.store.engine.sync_engine
        event.listen(self.engine, "after_cursor_execute", self._seen)
        event.listen(self.engine, "commit", self._commit)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            self.reads += 1
        else:
            self.writes += 1

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    def close(self) -> None:
        event.remove(self.engine, "after_cursor_execute", self._seen)
        event.remove(self.engine, "commit", self._commit)


async def test_a_key_passes_once_even_at_once_and_after_a_restart(core: Core) -> None:
    conn = await _connection(core)
    results = await asyncio.gather(*(deliveries.first_delivery(core, "square", conn, "event:e1") for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert await deliveries.first_delivery(core, "acuity", conn, "event:e1")  # another integration's key
    await deliveries.delivery_memory(core).flush()
    again = open_core(core.settings)
    try:
        assert not await deliveries.first_delivery(again, "square", conn, "event:e1")
        assert await deliveries.first_delivery(again, "square", conn, "x" * 300)  # long keys are hashed
        assert not await deliveries.first_delivery(again, "square", conn, "x" * 300)
    finally:
        await again.close()  # closing writes what it accepted
    third = open_core(core.settings)
    try:
        assert not await deliveries.first_delivery(third, "square", conn, "x" * 300)
    finally:
        await third.close()


async def test_a_burst_is_one_transaction_and_a_replay_touches_no_database(core: Core) -> None:
    """The acks no longer wait on a transaction each: 100 new keys are written together, replays read nothing."""
    conn = await _connection(core)
    assert await deliveries.first_delivery(core, "square", conn, "event:warm")  # loads the connection's keys
    memory = deliveries.delivery_memory(core)
    await memory.flush()
    counted = _Statements(core)
    try:
        # One after the other with no pause: as deliveries arriving while the writer is busy.
        accepted = [await deliveries.first_delivery(core, "square", conn, f"event:{n}") for n in range(100)]
        assert all(accepted) and counted.writes == 0 and counted.reads == 0  # answered before any SQL
        await memory.flush()
        assert counted.commits == 1 and memory.unsaved == 0
        before = (counted.reads, counted.writes, counted.commits)
        replays = [await deliveries.first_delivery(core, "square", conn, f"event:{n}") for n in range(100)]
        assert not any(replays)
        assert (counted.reads, counted.writes, counted.commits) == before
    finally:
        counted.close()
    assert await _rows(core) == 101


async def test_keys_wait_out_a_database_failure(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed batch keeps its keys and is written when the database answers again; nothing is lost."""
    conn = await _connection(core)
    memory = deliveries.delivery_memory(core)
    monkeypatch.setattr(deliveries, "RETRY_FIRST", 0.0)
    monkeypatch.setattr(deliveries, "BATCH_PAUSE", 0.0)
    real = memory._write
    failures = asyncio.Event()
    calls = 0

    async def flaky(batch: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            failures.set()
            raise OSError("database went away")
        await real(batch)

    monkeypatch.setattr(memory, "_write", flaky)
    assert await deliveries.first_delivery(core, "square", conn, "event:a")
    await failures.wait()
    assert not await deliveries.first_delivery(core, "square", conn, "event:a")  # still refused meanwhile
    await memory.flush()
    assert calls == 2 and memory.last_error is None and await _rows(core) == 1


async def test_a_key_another_replica_stored_is_refused_here_after_a_batch(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes on one database: a replay sent to the other one is refused once rows were exchanged."""
    monkeypatch.setattr(deliveries, "CATCH_UP_SECONDS", 0.0)
    conn = await _connection(core)
    other = open_core(core.settings)
    try:
        assert await deliveries.first_delivery(core, "square", conn, "event:mine")
        assert await deliveries.first_delivery(other, "square", conn, "event:theirs")
        await deliveries.delivery_memory(other).flush()
        assert await deliveries.first_delivery(core, "square", conn, "event:next")
        await deliveries.delivery_memory(core).flush()  # the batch reads what the other stored
        assert not await deliveries.first_delivery(core, "square", conn, "event:theirs")
    finally:
        await other.close()


async def test_the_memory_is_bounded(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deliveries, "KEEP", 10)
    monkeypatch.setattr(deliveries, "TRIM_SLACK", 5)
    conn = await _connection(core)
    memory = deliveries.delivery_memory(core)
    for n in range(60):
        assert await deliveries.first_delivery(core, "square", conn, f"event:{n}")
        if n % 3 == 2:
            await memory.flush()
    await memory.flush()
    held = await _rows(core)
    assert 10 <= held <= 15
    assert len(memory._seen[("square", conn)].keys) == 10
    assert not await deliveries.first_delivery(core, "square", conn, "event:59")  # the newest are kept
