"""People mapped by hand: a person the scheduler holds no sign-in for gets their shifts once mapped to a
UPN or a practitioner, and loses them again when the mapping is undone; the mapping card's state says who
gets what."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from sync.runtime.core import Core
from sync.services import shift_mapping
from sync.services import shifts as service
from sync.services.errors import Invalid, NotFound
from sync.services.practices import add_practitioner, practice_by_name
from sync.store.model import AuditEntry, ShiftRow
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.adapters.shifts.conftest import ZONE

HEADER = "Person,UniqueID,Custom1,Assignment,Start,End,Notes,Published\n"


def day(offset: int) -> str:
    return (datetime.now(ZoneInfo(ZONE)) + timedelta(days=offset)).strftime("%Y-%m-%d")


def events(mbx: Mailbox) -> list[Any]:
    return [e for c in mbx.calendars.values() for e in c.events.values()]


async def test_a_person_without_a_sign_in_is_mapped_by_hand_then_unmapped(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    data = (HEADER + f"Cy Roe,LB3,,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes\n"
            + f"Ann Lee,LB1,ann@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes\n").encode()
    summary = await service.import_schedule(core, None, await service.parse_upload(core, None, "s.csv", data),
                                            actor="cli:admin")
    assert summary.unmapped == ["Cy Roe"]
    await service.publish(core, None, actor="cli:admin")
    state = await shift_mapping.mapping_state(core, None)
    assert [(p.name, p.how, p.mailbox) for p in state.people] == [("Cy Roe", "none", ""),
                                                                   ("Ann Lee", "field", "ann@clinic.example")]

    target, changed = await shift_mapping.map_person(core, None, "  cy   ROE ", actor="cli:admin",
                                                     upn="Dee@Clinic.example")
    assert (target, changed) == ("dee@clinic.example", 1)
    assert (await service.publish(core, None, actor="cli:admin")).created == 1
    assert [e.fields["subject"] for e in events(people["dee"])] == ["Day clinic"]
    # The next import keeps the hand mapping: Cy is no longer listed as without a sign-in.
    again = await service.import_schedule(core, None, await service.parse_upload(core, None, "s.csv", data),
                                          actor="cli:admin")
    assert again.unmapped == [] and again.to_create == 0

    # To a practitioner: their e-mail is the mailbox, and the shifts are theirs in chat.
    async with core.store.session() as s:
        bob = await add_practitioner(s, await practice_by_name(s, None), "Dr Bob", email="bob@clinic.example",
                                     tz=None, actor="cli:admin")
        bob_id = bob.id
    target, _ = await shift_mapping.map_person(core, None, "Cy Roe", actor="cli:admin", practitioner_id=bob_id)
    assert target == "bob@clinic.example"
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.deleted, result.created) == (1, 1)
    assert events(people["dee"]) == [] and len(events(people["bob"])) == 1
    async with core.store.session() as s:
        owner = await s.scalar(select(ShiftRow.practitioner_id).where(ShiftRow.person_name == "Cy Roe"))
        assert owner == bob_id
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "shifts.map_person")
                               .order_by(AuditEntry.id.desc()).limit(1))
        assert entry is not None and entry.after["upn"] == "bob@clinic.example"

    # Undone: the identity field decides again, and Cy has none.
    await shift_mapping.map_person(core, None, "Cy Roe", actor="cli:admin")
    assert (await service.publish(core, None, actor="cli:admin")).deleted == 1
    assert events(people["bob"]) == []
    with pytest.raises(NotFound, match="nobody called"):
        await shift_mapping.map_person(core, None, "Nobody Here", actor="cli:admin", upn="x@clinic.example")
    with pytest.raises(Invalid, match="not a Microsoft sign-in"):
        await shift_mapping.map_person(core, None, "Cy Roe", actor="cli:admin", upn="not an address")
