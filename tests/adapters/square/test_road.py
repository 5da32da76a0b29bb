"""The booking road with Square, through the running server: a booking made on Square arrives by
webhook, is read from the API into an appointment for the mapped practitioner and mirrored; a
reschedule from chat reaches Square at version+1 through the outbox and moves the mirror; forged,
replayed and unknown deliveries change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.app import build_app
from sync.boot import open_core
from sync.engine.outbox import run_until_idle
from sync.engine.run import sync_connection
from sync.engine.subscriber import register
from sync.integrations import registry
from sync.integrations.connect import begin_oauth, finish_oauth
from sync.integrations.deliveries import REJECTED, delivery_memory
from sync.integrations.push import ensure_push
from sync.runtime.core import Core
from sync.runtime.syncqueue import SyncQueue
from sync.services import appointments as services
from sync.services.staff import map_staff, unassigned_calendars
from sync.store import audit
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, Calendar, Connection, Practice, Practitioner, WebhookDelivery
from tests.adapters.square.fakes.square import SquareFake
from tests.conftest import drop_schema, make_settings
from tests.fakes.memory_calendar import MemoryServer
from tests.servers import free_port
from tests.sync import memory_adapter

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1, hours=3)


@dataclass
class Road:
    core: Core
    fake: SquareFake
    base: str
    connection_id: int
    practitioner_id: int
    practice_id: int
    mirror: MemoryServer


@pytest.fixture
async def road(backend: str, tmp_path: Path, fake: SquareFake,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Road]:
    port = free_port()
    settings = make_settings(backend, tmp_path, square_api_url=fake.url, square_oauth_url=fake.url,
                             square_client_id=fake.client_id, square_client_secret=fake.client_secret,
                             public_url=f"http://127.0.0.1:{port}",
                             sync_poll_seconds=0)  # syncs come from deliveries and the test
    core = open_core(settings)
    await upgrade(core.store)
    register(core)
    fake.add_staff("TM-A", "Alex")
    fake.add_customer("C1", "Jane", "Roe", "jane@example.org")
    fake.add_service("SV1", "Deep tissue massage")
    memory_adapter.SERVERS.clear()
    mirror = memory_adapter.SERVERS["memory://lee/mirror"] = MemoryServer()
    monkeypatch.setitem(registry.OVERRIDES, "caldav", memory_adapter.INTEGRATION)
    async with core.store.session() as s:
        practice = Practice(name="Clinic", timezone="Europe/London")
        s.add(practice)
        await s.flush()
        lee = Practitioner(practice_id=practice.id, name="Dr Lee", handle="dr-lee", timezone="Europe/London")
        s.add(lee)
        await s.flush()
        mconn = Connection(practice_id=practice.id, provider="caldav", account="lee", practitioner_id=lee.id,
                           config={"url": "memory://lee/mirror"})
        s.add(mconn)
        await s.flush()
        s.add(Calendar(connection_id=mconn.id, remote_id="memory://lee/mirror", name="Lee", role="mirror",
                       practitioner_id=lee.id, projection="initials"))
        practice_id, lee_id = practice.id, lee.id
    pending = await begin_oauth(core, "square", practice_id=practice_id, chat_identity_id=None)
    saved = await finish_oauth(core, "square", {"state": pending.state, "code": fake.authorize()})

    async def runner(connection_id: int) -> None:
        await sync_connection(core, connection_id)

    core.services.sync_queue = SyncQueue(runner)
    server = TestServer(build_app(core.settings, core=core), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield Road(core, fake, f"http://127.0.0.1:{port}", saved.connection_id, lee_id, practice_id, mirror)
    finally:
        await fake.drain()
        await core.services.sync_queue.drain()
        await server.close()
        await core.close()
        await drop_schema(settings)


async def _settle(road: Road) -> None:
    """Let every delivery be answered and every requested sync and outbox op run."""
    for _ in range(3):
        await road.fake.drain()
        await road.core.services.sync_queue.drain()
        await run_until_idle(road.core)


async def _appointments(core: Core) -> list[Appointment]:
    async with core.store.session() as s:
        return list((await s.scalars(select(Appointment).order_by(Appointment.id))).all())


async def test_square_booking_to_chat_reschedule_and_back(road: Road) -> None:
    core, fake = road.core, road.fake
    report = await ensure_push(core, road.connection_id)
    assert report.created == 1 and len(fake.subscriptions) == 1
    (sub,) = fake.subscriptions.values()
    assert sub.notification_url == f"{road.base}/webhooks/square/{road.connection_id}"

    # A booking for a team member nobody is mapped to yet: kept, listed as unassigned.
    booking = await fake.book("TM-A", START, 60, customer_id="C1", service="SV1", note="first visit")
    await _settle(road)
    assert fake.delivered == [200]
    (appt,) = await _appointments(core)
    assert appt.practitioner_id is None and appt.client_name == "Jane Roe"
    assert (appt.service, appt.notes, appt.client_email) == ("Deep tissue massage", "first visit", "jane@example.org")
    async with core.store.session() as s:
        assert await unassigned_calendars(s, road.practice_id) == [("square", "TM-A", "Alex", 1)]
        lee = await s.get(Practitioner, road.practitioner_id)
        assert lee is not None
        await map_staff(s, lee, "square", "TM-A", actor="slack:T1/UADMIN")
    await sync_connection(core, road.connection_id)
    await _settle(road)
    (appt,) = await _appointments(core)
    assert appt.practitioner_id == road.practitioner_id
    (copy,) = road.mirror.items.values()
    assert copy.event.start == START

    # Staff reschedule it from chat: Square holds the new time at version + 1, the mirror moves.
    new_start = START + timedelta(hours=2)
    async with core.store.session() as s:
        row = await s.get(Appointment, appt.id)
        assert row is not None
        await services.reschedule(s, core.bus, row, new_start, None, "slack:T1/U1")
    await _settle(road)
    held = fake.bookings[booking["id"]]
    assert held["version"] == 1 and held["start_at"] == new_start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert held["appointment_segments"][0]["duration_minutes"] == 60
    (copy,) = road.mirror.items.values()
    assert copy.event.start == new_start
    (appt,) = await _appointments(core)
    assert appt.start == new_start and appt.status == "confirmed"
    async with core.store.session() as s:
        moved = await s.scalar(select(AuditEntry).where(AuditEntry.action == "appointment.rescheduled"))
        assert moved is not None and moved.actor == "slack:T1/U1"
        assert (await audit.verify(s))[1] is None

    # A cancel made on Square arrives as booking.updated and cancels the appointment.
    await fake.change(booking["id"], status="CANCELLED_BY_CUSTOMER")
    await _settle(road)
    (appt,) = await _appointments(core)
    assert appt.status == "cancelled"


async def test_forged_replayed_and_unknown_deliveries_change_nothing(road: Road) -> None:
    core, fake = road.core, road.fake
    await ensure_push(core, road.connection_id)
    fake.deliver = False
    await fake.book("TM-A", START, 30)
    ((url, body, headers),) = fake.held
    async with aiohttp.ClientSession() as http:
        forged = {**headers, "x-square-hmacsha256-signature": "AAAA" + headers["x-square-hmacsha256-signature"][4:]}
        assert (await http.post(url, data=body, headers=forged)).status == 401
        assert (await http.post(url, data=body + b" ", headers=headers)).status == 401
        assert (await http.post(f"{road.base}/webhooks/square/999", data=body, headers=headers)).status == 404
        async with core.store.session() as s:  # nothing accepted (the refusals are kept for webhook health)
            assert await s.scalar(select(func.count()).select_from(WebhookDelivery)
                                  .where(WebhookDelivery.key.not_like(f"{REJECTED}%"))) == 0
        assert (await http.post(url, data=body, headers=headers)).status == 200
        assert (await http.post(url, data=body, headers=headers)).status == 401  # the replay
    await _settle(road)
    assert len(await _appointments(core)) == 1
    await delivery_memory(core).flush()
    async with core.store.session() as s:
        keys = list((await s.scalars(select(WebhookDelivery.key).order_by(WebhookDelivery.id))).all())
    accepted = [k for k in keys if not k.startswith(REJECTED)]
    assert len(accepted) == 1  # the replay left no second row
    assert sorted(k.split(":")[1] for k in keys if k.startswith(REJECTED)) == ["401", "401"]  # the two forged


async def test_a_lost_webhook_is_caught_by_the_poll(road: Road) -> None:
    """Polling is the backstop: a booking whose delivery never came is found by the next sync."""
    road.fake.deliver = False
    await ensure_push(road.core, road.connection_id)
    await road.fake.book("TM-A", START, 30)
    assert await _appointments(road.core) == []
    await sync_connection(road.core, road.connection_id)
    assert len(await _appointments(road.core)) == 1


async def test_each_subscription_delivers_once_and_makes_one_booking(road: Road) -> None:
    """Square sends an event to every subscription (one per team member): all are answered 200, one booking."""
    road.fake.add_staff("TM-B", "Billie")
    await refresh(road)
    assert (await ensure_push(road.core, road.connection_id)).created == 2
    await road.fake.book("TM-A", START, 30)
    await _settle(road)
    assert road.fake.delivered == [200, 200]
    assert len(await _appointments(road.core)) == 1


async def refresh(road: Road) -> None:
    from sync.services.connections import refresh_connection

    await refresh_connection(road.core, road.practice_id, str(road.connection_id), actor="test")
