"""Store.data_version: bumped by committed writes to the tables chat answers are built from, only."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from sync.runtime.core import Core
from sync.store import audit
from sync.store.model import Appointment, Practice, Practitioner


async def test_reads_audit_entries_and_rollbacks_leave_it_alone(core: Core) -> None:
    store = core.store
    start = store.data_version
    async with store.session() as s:
        await s.scalar(select(Practice))
    async with store.session() as s:
        await audit.record(s, actor="test", action="test.noted")
    assert store.data_version == start
    with pytest.raises(RuntimeError):
        async with store.session() as s:
            practice = await s.scalar(select(Practice))
            assert practice is not None
            s.add(Practitioner(practice_id=practice.id, name="Dr Gone", handle="dr-gone", timezone="UTC", reminder_prefs={}))
            await s.flush()  # the INSERT ran ...
            raise RuntimeError("... and was rolled back")
    assert store.data_version == start
    async with store.session() as s:  # a transaction after the rollback that only reads
        await s.scalar(select(Practitioner))
    assert store.data_version == start


async def test_committed_orm_and_core_writes_bump_it(core: Core) -> None:
    store = core.store
    start = store.data_version
    async with store.session() as s:
        practice = await s.scalar(select(Practice))
        assert practice is not None
        s.add(Practitioner(practice_id=practice.id, name="Dr New", handle="dr-new", timezone="UTC", reminder_prefs={}))
    # Twice per commit: as it starts, and once it has reached the database (see Store._committed).
    assert store.data_version == start + 2
    async with store.session() as s:
        await s.execute(update(Appointment).where(Appointment.id == -1).values(client_name="x"))
    assert store.data_version == start + 4


async def test_orm_writes_are_put_down_to_their_practice_and_core_writes_to_none(core: Core) -> None:
    """version_for(practice): changes with that practice's writes and with writes of unknown practice only."""
    from sync.store.model import ChatIdentity, Role

    store = core.store
    async with store.session() as s:
        first = await s.scalar(select(Practice).order_by(Practice.id))
        assert first is not None
        other = Practice(name="Other clinic", timezone="UTC")
        s.add(other)
        await s.flush()
        mine, theirs = first.id, other.id
    before_mine, before_theirs = store.version_for(mine), store.version_for(theirs)
    async with store.session() as s:  # a first contact in the other practice: identity and role together
        person = ChatIdentity(practice_id=theirs, platform="slack", workspace_id="T9", user_id="U9")
        s.add(person)
        await s.flush()
        s.add(Role(chat_identity_id=person.id, role="staff"))
    assert store.version_for(mine) == before_mine
    assert store.version_for(theirs) != before_theirs
    before_mine, before_theirs = store.version_for(mine), store.version_for(theirs)
    async with store.session() as s:  # a Core statement: which practice it hit is unknown
        await s.execute(update(Practitioner).where(Practitioner.id == -1).values(name="x"))
    assert store.version_for(mine) != before_mine and store.version_for(theirs) != before_theirs
    before_mine = store.version_for(mine)
    with pytest.raises(RuntimeError):  # rolled back: nothing changes
        async with store.session() as s:
            s.add(Practitioner(practice_id=mine, name="Dr Gone", handle="dr-gone", timezone="UTC", reminder_prefs={}))
            await s.flush()
            raise RuntimeError("rolled back")
    assert store.version_for(mine) == before_mine


async def test_calendar_and_connection_columns_an_answer_reads_count_and_sync_bookkeeping_does_not(
    core: Core,
) -> None:
    """An agenda shows which sources are read-only and which work calendars sync: changing a calendar's
    role, read_only or sync_enabled, or a connection's status or sync_enabled (ORM or Core) makes that
    practice's kept answers stale; a sync's cursor and last-success updates leave every answer alone."""
    from datetime import date

    from sync.store.model import Calendar, Connection

    store = core.store
    async with store.session() as s:
        mine_p, theirs_p = Practice(name="Mine", timezone="UTC"), Practice(name="Theirs", timezone="UTC")
        s.add_all([mine_p, theirs_p])
        await s.flush()
        mine, theirs = mine_p.id, theirs_p.id
        conn = Connection(practice_id=mine, provider="ics", account="feed")
        s.add(conn)
        await s.flush()
        cal = Calendar(connection_id=conn.id, remote_id="https://example.invalid/a.ics", role="source")
        s.add(cal)
        await s.flush()
        conn_id, cal_id = conn.id, cal.id
    day = (date(2026, 1, 5),)

    def versions() -> tuple[tuple[int, ...], tuple[int, ...]]:
        return store.version_for(mine, day), store.version_for(theirs, day)

    def changed(before: tuple[tuple[int, ...], tuple[int, ...]]) -> tuple[bool, bool]:
        now = versions()
        return now[0] != before[0], now[1] != before[1]

    for column, value in (("read_only", True), ("role", "work"), ("sync_enabled", False)):
        before = versions()
        async with store.session() as s:  # ORM: put down to the calendar's practice
            row = await s.get(Calendar, cal_id, options=[selectinload(Calendar.connection)])
            assert row is not None
            setattr(row, column, value)
        assert changed(before) == (True, False), column
    before = versions()
    async with store.session() as s:  # a Core statement: which practice it hit is not known
        await s.execute(update(Calendar).where(Calendar.id == cal_id).values(sync_enabled=True))
    assert changed(before) == (True, True)
    for column, value in (("status", "error"), ("sync_enabled", False)):
        before = versions()
        async with store.session() as s:
            found = await s.get(Connection, conn_id)
            assert found is not None
            setattr(found, column, value)
        assert changed(before) == (True, False), column
    before = versions()
    async with store.session() as s:  # a sync's bookkeeping, ORM and Core: no answer depends on it
        row = await s.get(Calendar, cal_id)
        found = await s.get(Connection, conn_id)
        assert row is not None and found is not None
        row.cursor, found.cursor, found.last_error = "token-2", "delta-2", "timeout"
        await s.flush()
        await s.execute(update(Calendar).where(Calendar.id == cal_id).values(cursor="token-3", read_notes=[]))
        await s.execute(update(Connection).where(Connection.id == conn_id).values(last_error=None, cursor="d-3"))
    assert changed(before) == (False, False)


def test_a_successful_sync_names_the_status_only_when_it_can_change() -> None:
    """A sync that succeeds writes its bookkeeping; the status (which answers depend on) only when it
    was not `active`, so an ordinary sync leaves every kept answer alone."""
    from datetime import UTC, datetime

    from sync.engine.run import _succeeded
    from sync.store.model import Connection

    now = datetime(2026, 1, 5, tzinfo=UTC)
    assert set(_succeeded(now, "active")) == {Connection.last_success_at, Connection.last_error}
    assert Connection.status in _succeeded(now, "error")


async def test_the_session_class_listeners_do_not_keep_the_store_alive(core: Core) -> None:
    """A Store's flush listeners sit on its own session class, in SQLAlchemy's class-level event
    registry, which lives as long as the process. Bound methods there kept every Store ever made (its
    engine, pool and statement cache) alive: the test suite's process grew past 3 GB and spent minutes
    in its last garbage collection. They reach the Store through a weak reference now, and still run."""
    from sync.store.database import Store

    store = core.store
    before = store.data_version
    async with store.session() as s:  # the listeners still see the flush and count the write
        for name in ("before_flush", "after_flush"):
            listeners = list(getattr(s.sync_session.dispatch, name))
            assert listeners
            assert not [fn for fn in listeners if isinstance(getattr(fn, "__self__", None), Store)]
        s.add(Practice(name="Counted Clinic", timezone="UTC"))
    assert store.data_version > before
