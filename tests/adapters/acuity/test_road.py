"""Acuity through the running server: an id-only form delivery makes clinicbot read the appointment;
a replay is refused; a reschedule from chat reaches Acuity, and Acuity's refusal is kept in words."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from adapters.acuity.webhooks import sign
from bot.app import build_app
from bot.commands import handle, parse
from bot.commands.actions import MarkAttended, MarkNoShow, ShowDetails
from bot.slack.render import message as slack_message
from bot.teams.cards import render as teams_render
from bot.views import Agenda, AppointmentDetail, FollowUp
from sync.boot import open_core
from sync.engine.outbox import run_until_idle
from sync.engine.run import sync_connection
from sync.engine.subscriber import register
from sync.integrations.push import ensure_push
from sync.runtime.core import Core
from sync.runtime.syncqueue import SyncQueue
from sync.services import appointments as services
from sync.services.connections import add_connection
from sync.services.staff import map_staff
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, OutboxOp, Practice, Practitioner
from tests.adapters.acuity.fakes.acuity import AcuityFake
from tests.bot.clinic import make_actor
from tests.conftest import drop_schema, make_settings
from tests.servers import free_port

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3, hours=2)


@pytest.fixture
async def world(backend: str, tmp_path: Path, fake: AcuityFake) -> AsyncIterator[tuple[Core, int, str]]:
    port = free_port()
    settings = make_settings(backend, tmp_path, acuity_api_url=fake.url, public_url=f"http://127.0.0.1:{port}",
                             sync_poll_seconds=0)  # syncs come from deliveries and the test
    core = open_core(settings)
    await upgrade(core.store)
    register(core)
    fake.add_calendar(1, "Dr Lee")
    async with core.store.session() as s:
        practice = await s.scalar(select(Practice).order_by(Practice.id))  # the one the CLI connects to
        assert practice is not None
        lee = Practitioner(practice_id=practice.id, name="Dr Lee", handle="dr-lee")
        s.add(lee)
    added = await add_connection(core, "acuity", "https://acuityscheduling.com", username=fake.user_id,
                                 password=fake.api_key, actor="cli:test")
    async with core.store.session() as s:
        found = await s.scalar(select(Practitioner))
        assert found is not None
        await map_staff(s, found, "acuity", "1", actor="cli:test")

    async def runner(connection_id: int) -> None:
        await sync_connection(core, connection_id)

    core.services.sync_queue = SyncQueue(runner)
    server = TestServer(build_app(core.settings, core=core), host="127.0.0.1", port=port)
    await server.start_server()
    base = f"http://127.0.0.1:{port}"
    try:
        yield core, added.connection_id, base
    finally:
        await fake.drain()
        await core.services.sync_queue.drain()
        await server.close()
        await core.close()
        await drop_schema(settings)


async def _settle(core: Core, fake: AcuityFake) -> None:
    for _ in range(3):
        await fake.drain()
        await core.services.sync_queue.drain()
        await run_until_idle(core)


async def test_acuity_delivery_reschedule_and_refusal(world: tuple[Core, int, str], fake: AcuityFake) -> None:
    core, conn_id, base = world
    assert (await ensure_push(core, conn_id)).created == 1
    # The webhook was made through Acuity's API, for every change, at this connection's address.
    (hook,) = fake.webhooks.values()
    url = hook["target"]
    assert (hook["event"], url) == ("appointment.changed", f"{base}/webhooks/acuity/{conn_id}")
    fake.deliver = False
    appt = await fake.book(1, START, 30)
    (body,) = fake.held
    fake.deliver = True
    await fake._post(body, sign(body, fake.api_key), url)
    await _settle(core, fake)
    assert fake.delivered == [200]
    async with core.store.session() as s:
        row = await s.scalar(select(Appointment))
        assert row is not None and row.client_name == "Jane Roe" and row.practitioner_id is not None
        await services.reschedule(s, core.bus, row, START + timedelta(hours=1), None, "slack:T1/U1")
    await _settle(core, fake)
    assert fake.appointments[appt["id"]]["datetime"] == (START + timedelta(hours=1)).isoformat()
    # The same delivery again is a replay.
    async with aiohttp.ClientSession() as http:
        replay = await http.post(url, data=body, headers={"X-Acuity-Signature": sign(body, fake.api_key)})
        assert replay.status == 401
        forged = await http.post(url, data=body, headers={"X-Acuity-Signature": sign(body, "guess")})
        assert forged.status == 401
    fake.refuse[appt["id"]] = "reschedule_too_close"
    async with core.store.session() as s:
        row = await s.scalar(select(Appointment))
        assert row is not None
        await services.reschedule(s, core.bus, row, START + timedelta(hours=4), None, "slack:T1/U1")
    await _settle(core, fake)
    assert fake.appointments[appt["id"]]["datetime"] == (START + timedelta(hours=1)).isoformat()
    async with core.store.session() as s:
        failed = (await s.scalars(select(OutboxOp).where(OutboxOp.status == "failed"))).all()
    assert [op.last_error for op in failed] == [
        "Acuity refused: it is too close to the appointment to reschedule it in Acuity (reschedule_too_close)."]


async def test_a_no_show_stays_distinct_and_the_phone_shows_on_the_details_card(
    world: tuple[Core, int, str], fake: AcuityFake
) -> None:
    core, conn_id, _ = world
    assert core.services.sync_queue is not None
    appt = await fake.book(1, START, 30, phone="+44 20 7946 0018")  # a number set aside for drama
    core.services.sync_queue.request(conn_id, reason="test")
    await _settle(core, fake)
    async with core.store.session() as s:
        row = await s.scalar(select(Appointment))
        assert row is not None and row.status == "confirmed" and row.client_phone == "+44 20 7946 0018"
    staff = await make_actor(core, "USTAFF", ("staff",))
    view = await handle(core, staff, parse(f"appointment A-{row.id}"))
    assert isinstance(view, AppointmentDetail) and view.phone == "+44 20 7946 0018"
    _, blocks = slack_message(view)
    assert "+44 20 7946 0018" in json.dumps(blocks)
    assert '{"title": "Phone", "value": "+44 20 7946 0018"}' in json.dumps(teams_render(view))
    # Acuity records the no-show as a cancel with noShow: clinicbot keeps it a no-show.
    await fake.mark_no_show(appt["id"])
    core.services.sync_queue.request(conn_id, reason="test")
    await _settle(core, fake)
    async with core.store.session() as s:
        row = await s.scalar(select(Appointment))
        assert row is not None and row.status == "no_show"
        actions = (await s.scalars(select(AuditEntry.action).where(AuditEntry.appointment_id == row.id)
                                   .order_by(AuditEntry.seq))).all()
    assert actions[-1] == "appointment.no_show" and "appointment.cancelled" not in actions
    day = await handle(core, staff, parse(START.date().isoformat()))
    assert isinstance(day, Agenda) and [i.status for i in day.items] == ["no_show"]
    assert day.items[0].actions == (ShowDetails(row.id),)  # nothing to move or cancel any more
    # The follow-up card says what the platform recorded, and asks nothing more.
    follow = await handle(core, staff, MarkAttended(row.id))
    assert isinstance(follow, FollowUp)
    assert "marked no-show by the booking platform" in follow.notice and "Nothing was changed" in follow.notice
    assert not any(isinstance(a, (MarkAttended, MarkNoShow)) for a in follow.actions)
