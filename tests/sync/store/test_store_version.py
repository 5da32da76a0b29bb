"""Store.data_version: bumped by committed writes to the tables chat answers are built from, only."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

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
    assert store.data_version == start + 1
    async with store.session() as s:
        await s.execute(update(Appointment).where(Appointment.id == -1).values(client_name="x"))
    assert store.data_version == start + 2
