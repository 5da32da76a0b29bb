"""The audit chain's append lock is held only from just before the commit to the commit.

`record` queues its entry in the session; the entries are chained and inserted right before the
commit (or before the transaction reads the log), so a transaction that is still working does not
stop other writers from appending and committing, and the chain stays gapless and in order.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from sync.runtime.core import Core
from sync.store import audit
from sync.store.model import AuditEntry


async def _verify(core: Core) -> tuple[int, audit.AuditProblem | None]:
    async with core.store.session() as s:
        return await audit.verify(s)


async def _record_and_commit(core: Core, action: str) -> None:
    async with core.store.session() as s:
        await audit.record(s, actor="cli:test", action=action)


async def test_an_open_transaction_does_not_hold_other_writers_back(core: Core) -> None:
    """Before: the first append took the lock (PostgreSQL) / the write lock (SQLite) until commit."""
    async with core.store.session() as slow:
        await audit.record(slow, actor="cli:test", action="slow.first")
        # Another writer appends and commits while `slow` is still open: it does not wait.
        await asyncio.wait_for(_record_and_commit(core, "quick"), timeout=10)
        await audit.record(slow, actor="cli:test", action="slow.second")
    async with core.store.session() as s:
        rows = (await s.execute(select(AuditEntry.seq, AuditEntry.action).order_by(AuditEntry.seq))).all()
    # The committed-first transaction comes first in the chain; the slow one's entries keep their order.
    assert [tuple(r) for r in rows] == [(1, "quick"), (2, "slow.first"), (3, "slow.second")]
    assert await _verify(core) == (3, None)


async def test_reading_the_log_in_the_transaction_sees_its_queued_entries(core: Core) -> None:
    async with core.store.session() as s:
        await audit.record(s, actor="cli:test", action="a")
        await audit.record(s, actor="cli:test", action="b")
        seen = list((await s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))).all())
        assert seen == ["a", "b"]
        assert await audit.count(s) == 2
        await audit.record(s, actor="cli:test", action="c")
    assert await _verify(core) == (3, None)


async def test_a_rolled_back_transaction_or_savepoint_leaves_no_entry(core: Core) -> None:
    try:
        async with core.store.session() as s:
            await audit.record(s, actor="cli:test", action="lost")
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    async with core.store.session() as s:
        await audit.record(s, actor="cli:test", action="kept.before")
        try:
            async with s.begin_nested():
                await audit.record(s, actor="cli:test", action="in.savepoint")
                raise RuntimeError("the savepoint's change failed")
        except RuntimeError:
            pass
        async with s.begin_nested():
            await audit.record(s, actor="cli:test", action="in.released.savepoint")
        await audit.record(s, actor="cli:test", action="kept.after")
    async with core.store.session() as s:
        actions = list((await s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))).all())
    assert actions == ["kept.before", "in.released.savepoint", "kept.after"]
    assert await _verify(core) == (3, None)


async def test_many_concurrent_writers_keep_a_gapless_chain(core: Core) -> None:
    async def writer(i: int) -> None:
        for j in range(3):
            async with core.store.session() as s:
                await audit.record(s, actor="cli:test", action=f"w{i}.{j}", details={"i": i})
                await audit.record(s, actor="cli:test", action=f"w{i}.{j}.again")

    await asyncio.gather(*(writer(i) for i in range(8)))
    async with core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(AuditEntry)) == 48
    assert await _verify(core) == (48, None)


async def test_entries_appended_inside_a_savepoint_that_rolls_back_are_queued_again(core: Core) -> None:
    """A read of the log inside a savepoint appends the queue there; its rollback must not lose them."""
    async with core.store.session() as s:
        await audit.record(s, actor="cli:test", action="outer")
        try:
            async with s.begin_nested():
                await audit.record(s, actor="cli:test", action="inner")
                assert await audit.count(s) == 2  # both appended, inside the savepoint
                raise RuntimeError("the savepoint's change failed")
        except RuntimeError:
            pass
        await audit.record(s, actor="cli:test", action="after")
    async with core.store.session() as s:
        actions = list((await s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))).all())
    assert actions == ["outer", "after"]
    assert await _verify(core) == (2, None)
