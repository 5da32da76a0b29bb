"""`hold_write_lock`: on SQLite a read-check-write holds the write lock from before its read.

SQLite takes its write lock at a transaction's first write, and Python's driver runs the reads
before that outside any transaction; two read-check-writes at once can then both pass their
check. The appointment changes (sync.services.appointments.get_for_change, hold_schedule) take the lock
first; tests/bot/commands/test_concurrent_changes.py covers them on both databases.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from sync.boot import open_core
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.store.database import hold_write_lock
from sync.store.model import Practice


async def _append(core: Core, suffix: str, lock: bool) -> None:
    """Read the name, pause, write it back with `suffix`: a lost update unless serialized."""
    async with core.store.session() as s:
        if lock:
            await hold_write_lock(s)
        name = await s.scalar(select(Practice.name))
        await asyncio.sleep(0.1)
        await s.execute(text("UPDATE practice SET name = :name"), {"name": f"{name}{suffix}"})


async def _name(core: Core) -> str:
    async with core.store.session() as s:
        name = await s.scalar(select(Practice.name))
        assert name is not None
        return name


async def test_read_check_writes_holding_the_lock_take_turns(core: Core, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL: changes lock the rows they read (FOR UPDATE) instead")
    await asyncio.wait_for(asyncio.gather(_append(core, "+a", True), _append(core, "+b", True)), timeout=20)
    assert (await _name(core)).endswith(("+a+b", "+b+a"))


async def test_without_it_one_update_is_lost(core: Core, backend: str) -> None:
    """The reason for it: the same two transactions without the lock."""
    if backend != "sqlite":
        pytest.skip("shown on SQLite, where the lock applies")
    await asyncio.gather(_append(core, "+a", False), _append(core, "+b", False))
    name = await _name(core)
    assert not name.endswith(("+a+b", "+b+a")) and name.endswith(("+a", "+b"))


async def test_reads_do_not_wait_for_a_transaction_holding_it(core: Core) -> None:
    holding, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with core.store.session() as s:
            await hold_write_lock(s)
            await s.execute(text("UPDATE practice SET name = name || '+w'"))
            holding.set()
            await release.wait()

    task = asyncio.ensure_future(writer())
    await holding.wait()
    try:
        name = await asyncio.wait_for(_name(core), timeout=2)
        assert not name.endswith("+w")  # not committed yet, and the read did not wait for it
    finally:
        release.set()
        await task
    assert (await _name(core)).endswith("+w")


async def test_a_connection_back_in_the_pool_loses_what_it_left_open_and_only_that(core: Core, backend: str) -> None:
    """SQLite: the pool rolls back a connection on its return only when a transaction is still open on it
    (database._sqlite_reset), not after every commit; what was left open is gone and its lock released."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL keeps SQLAlchemy's own reset")
    async with core.store.session() as s:
        s.add(Practice(name="Kept", timezone="UTC", settings={}))
    async with core.store.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        # Behind SQLAlchemy's back: a write left open, which only the pool's reset can undo.
        await driver.execute("BEGIN IMMEDIATE")
        await driver.execute("UPDATE practice SET name = 'Lost' WHERE name = 'Kept'")
        assert driver.in_transaction
    assert not driver.in_transaction
    async with core.store.session() as s:  # the write lock is free again, the open write gone
        assert await s.scalar(select(Practice.name).where(Practice.name.in_(("Kept", "Lost")))) == "Kept"
        await s.execute(text("UPDATE practice SET name = 'Changed' WHERE name = 'Kept'"))
    async with core.store.session() as s:
        assert await s.scalar(select(Practice.id).where(Practice.name == "Changed")) is not None


async def test_the_pool_keeps_the_configured_number_of_connections(settings: Settings) -> None:
    """CLINICBOT_DATABASE_POOL_SIZE sizes each process's pool (replicas x pool must fit PostgreSQL)."""
    for size in (3, 20):
        core = open_core(settings.model_copy(update={"database_pool_size": size}))
        try:
            assert core.store.engine.pool.size() == size  # type: ignore[attr-defined]
        finally:
            await core.close()


async def test_a_connection_is_pinged_only_after_sitting_idle_and_a_dropped_one_is_replaced(
    core: Core, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: no ping on a checkout right after use (SQLAlchemy's pre-ping cost a round trip on
    every session); after PING_AFTER_IDLE in the pool a connection is pinged, and one the server
    dropped meanwhile is replaced instead of failing the session."""
    if backend != "postgres":
        pytest.skip("SQLite has no server to drop a connection")
    from sync.store import database

    dialect = core.store.engine.dialect
    pings: list[object] = []
    real_ping = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda conn: (pings.append(conn), real_ping(conn))[1])
    async with core.store.session() as s:
        pid = await s.scalar(text("SELECT pg_backend_pid()"))
    async with core.store.session() as s:
        assert await s.scalar(text("SELECT pg_backend_pid()")) == pid  # the same pooled connection
    assert pings == []
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 0.0)
    async with core.store.session() as s:
        assert await s.scalar(text("SELECT 1")) == 1
    assert len(pings) == 1
    other = open_core(core.settings)
    try:
        async with other.store.session() as s:  # the server drops the idle connection
            assert await s.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.close()
    async with core.store.session() as s:
        assert await s.scalar(text("SELECT pg_backend_pid()")) != pid
    assert len(pings) == 2
