"""Staff mapping: a platform's staff id maps to one practitioner, and mapping assigns waiting bookings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from sync.runtime.core import Core
from sync.services.staff import (
    StaffError,
    find_by_external_id,
    list_mappings,
    map_staff,
    unassigned_calendars,
    unmap_staff,
)
from sync.store import audit
from sync.store.model import Appointment, AuditEntry, Calendar, Connection, Practice, Practitioner
from tests.sync.helpers import NOW


async def _clinic(core: Core) -> tuple[int, int, int]:
    async with core.store.session() as s:
        p = Practice(name="Clinic", timezone="Europe/London")
        s.add(p)
        await s.flush()
        lee = Practitioner(practice_id=p.id, name="Dr Lee", handle="dr-lee")
        kim = Practitioner(practice_id=p.id, name="Dr Kim", handle="dr-kim")
        s.add_all([lee, kim])
        conn = Connection(practice_id=p.id, provider="square", account="merchant", config={})
        s.add(conn)
        await s.flush()
        cal = Calendar(connection_id=conn.id, remote_id="TM-1", name="Alex (Square)", role="source")
        s.add(cal)
        await s.flush()
        s.add(Appointment(practice_id=p.id, source_calendar_id=cal.id, source_uid="b1", start=NOW,
                          end=NOW + timedelta(minutes=30), client_name="Jane Roe"))
        return p.id, lee.id, kim.id


async def test_map_assigns_waiting_bookings_and_finds_by_external_id(core: Core) -> None:
    practice_id, lee_id, _ = await _clinic(core)
    async with core.store.session() as s:
        assert await unassigned_calendars(s, practice_id) == [("square", "TM-1", "Alex (Square)", 1)]
        lee = await s.get(Practitioner, lee_id)
        assert lee is not None
        mapping = await map_staff(s, lee, "Square", " TM-1 ", actor="cli:admin")
    assert (mapping.integration, mapping.kind, mapping.external_id, mapping.practitioner) == (
        "square", "team_member", "TM-1", "dr-lee")
    async with core.store.session() as s:
        found = await find_by_external_id(s, "square", "TM-1")
        assert found is not None and found.id == lee_id
        appt = await s.scalar(select(Appointment))
        cal = await s.scalar(select(Calendar))
        assert appt is not None and appt.practitioner_id == lee_id
        assert cal is not None and cal.practitioner_id == lee_id
        assert await unassigned_calendars(s, practice_id) == []
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "staff.map"))
        assert entry is not None and entry.actor == "cli:admin" and entry.details
        assert entry.details["assigned"] == 1
        assert (await audit.verify(s))[1] is None


async def test_remap_moves_the_id_and_unmap_leaves_it_unassigned(core: Core) -> None:
    practice_id, lee_id, kim_id = await _clinic(core)
    async with core.store.session() as s:
        lee, kim = await s.get(Practitioner, lee_id), await s.get(Practitioner, kim_id)
        assert lee is not None and kim is not None
        await map_staff(s, lee, "square", "TM-1", actor="a")
        await map_staff(s, kim, "square", "TM-1", actor="a")
    async with core.store.session() as s:
        rows = await list_mappings(s, practice_id)
        assert [(m.practitioner_id, m.external_id) for m in rows] == [(kim_id, "TM-1")]
        await unmap_staff(s, practice_id, "square", "TM-1", actor="a")
    async with core.store.session() as s:
        assert await list_mappings(s, practice_id) == []
        cal = await s.scalar(select(Calendar))
        assert cal is not None and cal.practitioner_id is None
        with pytest.raises(StaffError, match="no practitioner is mapped"):
            await unmap_staff(s, practice_id, "square", "TM-1", actor="a")


async def test_bad_input_is_refused_and_changes_nothing(core: Core) -> None:
    practice_id, lee_id, _ = await _clinic(core)
    with pytest.raises(StaffError, match="kind"):
        async with core.store.session() as s:
            lee = await s.get(Practitioner, lee_id)
            assert lee is not None
            await map_staff(s, lee, "someplatform", "x", actor="a")
    with pytest.raises(StaffError, match="1 to 512"):
        async with core.store.session() as s:
            lee = await s.get(Practitioner, lee_id)
            assert lee is not None
            await map_staff(s, lee, "square", "   ", actor="a")
    async with core.store.session() as s:
        assert await list_mappings(s, practice_id) == []
