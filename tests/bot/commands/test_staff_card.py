"""The staff card: booking-platform staff nobody is mapped to are offered to admins with a practitioner
picker (Slack select, Teams choice set); choosing one maps the staff id through the identities and
gives them the booking that was waiting."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.commands import handle, parse
from bot.commands.actions import MapStaffMember, decode
from bot.slack.render import message as slack_message
from bot.slack.staff_render import SELECT_ACTION
from bot.teams.cards import render as teams_render
from bot.views import Error, StaffCard
from sync.boot import open_core
from sync.engine.run import sync_connection
from sync.engine.subscriber import register
from sync.runtime.core import Core
from sync.services.connections import add_connection
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, ExternalIdentity, Practice, Practitioner
from tests.adapters.acuity.fakes.acuity import AcuityFake
from tests.bot.clinic import make_actor
from tests.conftest import drop_schema, make_settings

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2, hours=1)


@dataclass
class World:
    core: Core
    fake: AcuityFake
    connection_id: int
    lee: int
    ng: int


@pytest.fixture
async def world(backend: str, tmp_path: Path) -> AsyncIterator[World]:
    fake = await AcuityFake().start()
    settings = make_settings(backend, tmp_path, acuity_api_url=fake.url)
    core = open_core(settings)
    try:
        await upgrade(core.store)
        register(core)
        fake.add_calendar(1, "Dr Lee (Acuity)")
        fake.add_calendar(2, "Dr Ng (Acuity)")
        async with core.store.session() as s:
            practice = await s.scalar(select(Practice).order_by(Practice.id))
            assert practice is not None
            lee = Practitioner(practice_id=practice.id, name="Dr Lee", handle="dr-lee")
            ng = Practitioner(practice_id=practice.id, name="Dr Ng", handle="dr-ng")
            s.add_all([lee, ng])
            await s.flush()
            ids = (lee.id, ng.id)
        added = await add_connection(core, "acuity", "https://acuityscheduling.com", username=fake.user_id,
                                     password=fake.api_key, actor="cli:test")
        await fake.book(1, START, 30)
        await sync_connection(core, added.connection_id)
        yield World(core, fake, added.connection_id, *ids)
    finally:
        await core.close()
        await fake.close()
        await drop_schema(settings)


async def test_slack_picker_maps_the_staff_member_and_assigns_the_waiting_booking(world: World) -> None:
    core = world.core
    async with core.store.session() as s:
        (appt,) = (await s.scalars(select(Appointment))).all()
        assert appt.practitioner_id is None  # kept, unassigned
    admin = await make_actor(core, "UADMIN", ("admin",))
    card = await handle(core, admin, parse("staff"))
    assert isinstance(card, StaffCard) and card.mappings == ()
    assert [(m.name, m.waiting) for m in card.unmapped] == [("Dr Lee (Acuity)", 1), ("Dr Ng (Acuity)", 0)]
    _, blocks = slack_message(card)
    lee_line = next(b for b in blocks if b.get("block_id") == f"staff:{card.unmapped[0].calendar_id}")
    select_ = lee_line["accessory"]
    assert select_["action_id"] == SELECT_ACTION and select_["type"] == "static_select"
    chosen = next(o for o in select_["options"] if o["text"]["text"] == "Dr Lee")
    # What the Slack listener does with the select's block action.
    action = decode(SELECT_ACTION.removeprefix("clinic."), chosen["value"])
    after = await handle(core, admin, action)
    assert isinstance(after, StaffCard)
    assert after.notice == "acuity 1 is now @dr-lee; the 1 booking waiting for them is theirs now."
    assert [m.name for m in after.unmapped] == ["Dr Ng (Acuity)"] and len(after.mappings) == 1
    async with core.store.session() as s:
        (appt,) = (await s.scalars(select(Appointment))).all()
        identity = await s.scalar(select(ExternalIdentity))
        actions = (await s.scalars(select(AuditEntry.action))).all()
    assert appt.practitioner_id == world.lee
    assert identity is not None and (identity.integration, identity.external_id) == ("acuity", "1")
    assert "staff.map" in actions


async def test_teams_card_maps_with_its_choice_set_and_refuses_what_it_should(world: World) -> None:
    core = world.core
    admin = await make_actor(core, "UADMIN", ("admin",))
    card = await handle(core, admin, parse("staff"))
    assert isinstance(card, StaffCard)
    rendered = teams_render(card)
    doc = json.dumps(rendered)
    assert '"type": "Input.ChoiceSet", "id": "p"' in doc
    (button,) = rendered["actions"]
    assert button["type"] == "Action.Execute" and button["verb"] == "staff_map"
    # Teams merges the choice set's value into the button's data.
    data = {k: v for k, v in button["data"].items() if k != "verb"} | {"p": str(world.ng)}
    after = await handle(core, admin, decode(button["verb"], data))
    assert isinstance(after, StaffCard) and "now @dr-ng" in after.notice
    # No practitioner chosen, a practitioner of no practice, a staff member: refused, nothing changed.
    nothing = await handle(core, admin, MapStaffMember(card.unmapped[1].calendar_id))
    assert isinstance(nothing, Error) and "choose the practitioner" in nothing.message
    stranger = await handle(core, admin, MapStaffMember(card.unmapped[1].calendar_id, 999_999))
    assert isinstance(stranger, Error) and "not in this practice" in stranger.message
    staff = await make_actor(core, "USTAFF", ("staff",))
    denied = await handle(core, staff, parse("staff"))
    assert isinstance(denied, Error)
    async with core.store.session() as s:
        mapped = (await s.scalars(select(ExternalIdentity.external_id))).all()
    assert mapped == [card.unmapped[0].external_id]
