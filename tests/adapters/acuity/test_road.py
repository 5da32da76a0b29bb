"""Acuity through the running server: an id-only form delivery makes clinicbot read the appointment;
a replay is refused; a reschedule from chat reaches Acuity, and Acuity's refusal is kept in words."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from adapters.acuity.webhooks import sign
from bot.commands import handle, parse
from bot.commands.actions import MarkAttended, MarkNoShow, ShowDetails
from bot.slack.render import message as slack_message
from bot.teams.cards import render as teams_render
from bot.views import Agenda, AppointmentDetail, FollowUp
from sync.integrations.push import ensure_push
from sync.runtime.core import Core
from sync.services import appointments as services
from sync.store.model import Appointment, AuditEntry, OutboxOp
from tests.adapters.acuity.fakes.acuity import AcuityFake
from tests.adapters.road import served
from tests.adapters.road import settle as _settle
from tests.bot.clinic import make_actor

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3, hours=2)


@pytest.fixture
async def world(backend: str, tmp_path: Path, fake: AcuityFake) -> AsyncIterator[tuple[Core, int, str]]:
    fake.add_calendar(1, "Dr Lee")
    async with served(backend, tmp_path, fake, "acuity", "https://acuityscheduling.com", staff="1",
                      settings={"sync_poll_seconds": 0},  # syncs come from deliveries and the test
                      username=fake.user_id, password=fake.api_key) as (core, added, base):
        yield core, added.connection_id, base


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
