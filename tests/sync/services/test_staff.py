"""Staff mapping: a platform's staff id maps to one practitioner, and mapping assigns waiting bookings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from sync.runtime.core import Core
from sync.services.staff import (
    StaffError,
    clear_identities,
    find_by_external_id,
    identities_of,
    list_mappings,
    map_staff,
    set_identities,
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


async def test_set_identities_replaces_moves_within_the_practice_and_clears(core: Core) -> None:
    practice_id, lee_id, kim_id = await _clinic(core)
    async with core.store.session() as s:
        lee, kim = await s.get(Practitioner, lee_id), await s.get(Practitioner, kim_id)
        assert lee is not None and kim is not None
        await set_identities(s, lee, "graph", {"upn": "lee@clinic.example", "object_id": "oid-1"}, actor="cli:a")
        await set_identities(s, kim, "graph", {"upn": "kim@clinic.example"}, actor="cli:a")
        assert await identities_of(s, [lee_id, kim_id, 999], "graph") == {
            lee_id: {"object_id": "oid-1", "upn": "lee@clinic.example"}, kim_id: {"upn": "kim@clinic.example"}}
        assert await identities_of(s, [], "graph") == {}
        # Replacing drops the kinds not given; an id another practitioner of the practice held moves.
        await set_identities(s, lee, "graph", {"upn": "kim@clinic.example"}, actor="cli:a")
        assert await identities_of(s, [lee_id, kim_id], "graph") == {lee_id: {"upn": "kim@clinic.example"}}
        await clear_identities(s, lee, "graph", actor="cli:a")
        assert await identities_of(s, [lee_id, kim_id], "graph") == {}
        entries = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "staff.identities"))).all()
        assert len(entries) == 4 and all(e.practice_id == practice_id for e in entries)
        # Another practice's id is refused, nothing changed.
        other = Practice(name="Other", timezone="UTC")
        s.add(other)
        await s.flush()
        stranger = Practitioner(practice_id=other.id, name="Dr Roe")
        s.add(stranger)
        await s.flush()
        await set_identities(s, stranger, "graph", {"upn": "roe@other.example"}, actor="cli:a")
        with pytest.raises(StaffError, match="another practice"):
            await set_identities(s, lee, "graph", {"upn": "roe@other.example"}, actor="cli:a")
        assert await identities_of(s, [lee_id, stranger.id], "graph") == {stranger.id: {"upn": "roe@other.example"}}
