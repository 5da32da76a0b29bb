"""Calendly through the running server: a reschedule by the client arrives as two deliveries and makes
one move of one appointment, audited as a reschedule; stale and forged deliveries change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from adapters.calendly.webhooks import sign
from sync.integrations.deliveries import delivery_memory
from sync.integrations.push import ensure_push, renew_push, stop_push
from sync.runtime.core import Core
from sync.services.status import webhook_health
from sync.store.model import Appointment, AuditEntry
from tests.adapters.calendly.fakes.calendly import CalendlyFake
from tests.adapters.road import served
from tests.adapters.road import settle as _settle

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2, hours=1)


@pytest.fixture
async def world(backend: str, tmp_path: Path, fake: CalendlyFake) -> AsyncIterator[tuple[Core, int]]:
    fake.add_user("Dr Lee")
    async with served(backend, tmp_path, fake, "calendly", "https://api.calendly.com",
                      settings={"sync_poll_seconds": 0},  # syncs come from deliveries and the test
                      username="lee@clinic.example", password=fake.token) as (core, added, _):
        yield core, added.connection_id


async def test_two_deliveries_of_a_reschedule_make_one_move(world: tuple[Core, int], fake: CalendlyFake) -> None:
    core, conn_id = world
    assert (await ensure_push(core, conn_id)).created == 1
    event = await fake.book(fake.users[0]["uri"], START, 30)
    await _settle(core, fake)
    async with core.store.session() as s:
        (appt,) = (await s.scalars(select(Appointment))).all()
        assert appt.client_name == "Jane Roe" and appt.start == START
    await fake.reschedule_by_invitee(event["uri"].rsplit("/", 1)[-1], START + timedelta(hours=2))
    await _settle(core, fake)
    assert fake.delivered == [200, 200, 200]
    async with core.store.session() as s:
        (appt,) = (await s.scalars(select(Appointment))).all()
        assert appt.start == START + timedelta(hours=2) and appt.status == "confirmed"
        actions = [a for (a,) in (await s.execute(
            select(AuditEntry.action).where(AuditEntry.appointment_id == appt.id).order_by(AuditEntry.seq))).all()]
    assert actions == ["appointment.created", "appointment.rescheduled"]


async def test_stale_and_forged_deliveries_change_nothing(world: tuple[Core, int], fake: CalendlyFake) -> None:
    core, conn_id = world
    await ensure_push(core, conn_id)
    fake.deliver = False
    await fake.book(fake.users[0]["uri"], START, 30)
    ((url, body, headers),) = fake.held
    (sub,) = fake.subscriptions.values()
    async with aiohttp.ClientSession() as http:
        stale = {**headers, "Calendly-Webhook-Signature": sign(body, sub["signing_key"],
                                                               int(datetime.now(UTC).timestamp()) - 600)}
        assert (await http.post(url, data=body, headers=stale)).status == 401
        forged = {**headers, "Calendly-Webhook-Signature": sign(body, "guess", int(datetime.now(UTC).timestamp()))}
        assert (await http.post(url, data=body, headers=forged)).status == 401
        await _settle(core, fake)
        async with core.store.session() as s:
            assert (await s.scalars(select(Appointment))).all() == []
        assert (await http.post(url, data=body, headers=headers)).status == 200
        assert (await http.post(url, data=body, headers=headers)).status == 401  # the replay
    await _settle(core, fake)
    async with core.store.session() as s:
        assert len((await s.scalars(select(Appointment))).all()) == 1


async def test_a_chat_reschedule_is_refused_with_the_clients_link_and_changes_nothing(
    world: tuple[Core, int], fake: CalendlyFake
) -> None:
    from bot.commands import handle, parse
    from bot.views import Error
    from tests.bot.clinic import make_actor

    core, conn_id = world
    event = await fake.book(fake.users[0]["uri"], START, 30)
    core.services.sync_queue.request(conn_id, reason="test")
    await _settle(core, fake)
    async with core.store.session() as s:
        (appt,) = (await s.scalars(select(Appointment))).all()
    staff = await make_actor(core, "US", ("staff",))
    view = await handle(core, staff, parse(f"reschedule A-{appt.id} {(START + timedelta(days=1)).date()} 15:00"))
    assert isinstance(view, Error) and "no reschedule API" in view.message
    assert fake.invitees[event["uri"].rsplit("/", 1)[-1]]["reschedule_url"] in view.message
    async with core.store.session() as s:
        (after,) = (await s.scalars(select(Appointment))).all()
    assert (after.start, after.version) == (appt.start, appt.version)


async def test_a_subscription_calendly_disabled_is_made_again_and_health_shows_the_failures(
    world: tuple[Core, int], fake: CalendlyFake
) -> None:
    """Deliveries refused for 24 h make Calendly disable the subscription; the renewal job reads it back,
    finds it disabled and makes a new one; `sync status` and doctor's health show the refusals."""
    core, conn_id = world
    assert (await ensure_push(core, conn_id)).created == 1
    await _settle(core, fake)
    ((old_id, sub),) = fake.subscriptions.items()
    sub["signing_key"] = "a key clinicbot never had"  # every delivery now fails its signature: 401
    await fake.book(fake.users[0]["uri"], START, 30)
    await fake.drain()
    later = datetime.now(UTC) + timedelta(hours=25)
    fake.clock = lambda: later
    await fake.book(fake.users[0]["uri"], START + timedelta(hours=1), 30)
    await fake.drain()
    assert fake.delivered == [401, 401] and sub["state"] == "disabled"
    await fake.book(fake.users[0]["uri"], START + timedelta(hours=2), 30)
    await fake.drain()
    assert fake.delivered == [401, 401]  # a disabled subscription delivers nothing

    await delivery_memory(core).flush()
    (health,) = await webhook_health(core)
    assert (health.active, health.failures_24h, health.last_failure_status) == (1, 2, 401)
    assert "2 refused in 24 h (last HTTP 401)" in health.summary

    # The renewal job's next check (within the hour): read back, found disabled, made again.
    real = core.clock
    core.clock = lambda: real() + timedelta(hours=1)
    await renew_push(core)
    core.clock = real
    ((new_id, fresh),) = fake.subscriptions.items()
    assert new_id != old_id and fresh["state"] == "active"
    assert ("GET", f"/webhook_subscriptions/{old_id}") in fake.requests
    assert ("DELETE", f"/webhook_subscriptions/{old_id}") in fake.requests
    await fake.book(fake.users[0]["uri"], START + timedelta(hours=3), 30)
    await _settle(core, fake)
    assert fake.delivered[-1] == 200
    async with core.store.session() as s:
        assert len((await s.scalars(select(Appointment))).all()) == 4  # the poll-less gap is read back too


async def test_no_delivery_is_ever_answered_410(world: tuple[Core, int], fake: CalendlyFake) -> None:
    """Calendly deletes a subscription answered 410: a delivery clinicbot cannot take is a 404 or 401."""
    core, conn_id = world
    await ensure_push(core, conn_id)
    fake.deliver = False
    await fake.book(fake.users[0]["uri"], START, 30)
    ((url, body, headers),) = fake.held
    await stop_push(core, conn_id)  # `sync off`: the subscription is deleted, a late delivery arrives
    async with aiohttp.ClientSession() as http:
        assert (await http.post(url, data=body, headers=headers)).status == 404
        assert (await http.post(url.rsplit("/", 1)[0] + "/99999", data=body, headers=headers)).status == 404
