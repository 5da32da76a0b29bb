"""SimplyBook.me through the running server: a callback makes clinicbot read that one booking from the API
(signed with the company's secret key), never the whole window again; a callback that lies (another
company's booking, a made-up hash) changes nothing; a reschedule and a cancel from chat reach SimplyBook,
and its refusal is kept in its own words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import select, text

from sync.engine.run import sync_connection
from sync.integrations.push import ensure_push
from sync.runtime.core import Core
from sync.services import appointments as services
from sync.store.model import Appointment, OutboxOp
from tests.adapters.road import appointments as _appointments
from tests.adapters.road import served
from tests.adapters.road import settle as _settle
from tests.adapters.simplybook.fakes.simplybook import SimplyBookFake

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3, hours=2)
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
async def world(backend: str, tmp_path: Path, fake: SimplyBookFake) -> AsyncIterator[tuple[Core, int]]:
    async with served(backend, tmp_path, fake, "simplybook", f"https://{fake.company}.simplybook.me", staff="2",
                      username=fake.user, password=fake.password,
                      secrets_given={"api_key": fake.api_key, "secret_key": fake.secret_key}) as (core, added, base):
        fake.callback_url = f"{base}/webhooks/simplybook/{added.connection_id}"
        yield core, added.connection_id


async def test_callback_reschedule_cancel_and_a_lying_callback(world: tuple[Core, int], fake: SimplyBookFake) -> None:
    core, conn_id = world
    async with core.store.session() as s:  # the public API's key and secret are kept only encrypted
        creds = (await s.execute(text("SELECT credentials FROM connection"))).scalar_one()
    assert fake.secret_key not in str(creds) and fake.api_key not in str(creds)
    assert (await ensure_push(core, conn_id)).created == 2  # one channel per service provider
    await sync_connection(core, conn_id)  # the first read of each provider's window
    await _settle(core, fake)  # (and the one connecting queued)
    listings = fake.calls("getBookings")
    booked = await fake.book("2", START, 30)
    await _settle(core, fake)
    assert fake.delivered == [200]
    (row,) = await _appointments(core)
    assert row.client_name == "Jane Roe" and row.practitioner_id is not None and row.service == "Reflexology"
    assert row.start.astimezone(UTC) == START
    # The callback cost one signed read of that booking, for both providers' calendars, and no listing.
    assert fake.calls("getBookings") == listings
    assert [p for p, m in fake.requests if m == "getBookingDetails"] == ["/"]
    # Another company's booking, named in a callback to this connection: only what the API says counts.
    fake.deliver = False
    other = await fake.book("2", START + timedelta(hours=5), company="otherclinic", client="Someone Else")
    lie = (b'{"booking_id": "%s", "booking_hash": "%s", "company": "clinic", "notification_type": "create", '
           b'"webhook_timestamp": 1}' % (other["id"].encode(), other["hash"].encode()))
    assert await fake.post(lie) == 200
    made_up = lie.replace(other["id"].encode(), booked["id"].encode()).replace(other["hash"].encode(), b"0" * 32)
    assert await fake.post(made_up.replace(b'"webhook_timestamp": 1', b'"webhook_timestamp": 2')) == 200
    await _settle(core, fake)
    assert [a.client_name for a in await _appointments(core)] == ["Jane Roe"]
    assert fake.calls("getBookings") == listings and fake.calls("getBookingDetails") == 3
    # Moved on SimplyBook: the callback's read moves the appointment.
    fake.deliver = True
    await fake.move_on_simplybook(int(booked["id"]), START + timedelta(minutes=30))
    await _settle(core, fake)
    (row,) = await _appointments(core)
    assert row.start.astimezone(UTC) == START + timedelta(minutes=30)
    assert fake.calls("getBookings") == listings
    async with aiohttp.ClientSession() as http:  # the other company's own callback is not this connection's
        wrong = await http.post(fake.callback_url, data=lie.replace(b'"clinic"', b'"otherclinic"'))
        assert wrong.status == 404
    fake.deliver = True
    # Staff reschedule in chat: SimplyBook holds the new time.
    async with core.store.session() as s:
        appt = await s.get(Appointment, row.id)
        assert appt is not None
        await services.reschedule(s, core.bus, appt, START + timedelta(hours=1), None, "slack:T1/U1")
    await _settle(core, fake)
    assert fake.bookings[int(booked["id"])]["start_date"] == (START + timedelta(hours=1)).astimezone(
        LONDON).strftime("%Y-%m-%d %H:%M:%S")
    # SimplyBook refuses the next move: the failed change keeps its words, SimplyBook keeps its time.
    fake.refuse[int(booked["id"])] = (-32075, "Selected time is not available")
    async with core.store.session() as s:
        appt = await s.get(Appointment, row.id)
        assert appt is not None
        await services.reschedule(s, core.bus, appt, START + timedelta(hours=4), None, "slack:T1/U1")
    await _settle(core, fake)
    async with core.store.session() as s:
        failed = (await s.scalars(select(OutboxOp).where(OutboxOp.status == "failed"))).all()
    assert [op.last_error for op in failed] == ["SimplyBook refused: Selected time is not available (-32075)."]
    assert fake.bookings[int(booked["id"])]["start_date"] == (START + timedelta(hours=1)).astimezone(
        LONDON).strftime("%Y-%m-%d %H:%M:%S")


async def test_the_cli_takes_the_public_api_secrets_from_the_environment(tmp_path: Path,
                                                                         fake: SimplyBookFake) -> None:
    """`--secret-env FIELD=VAR`: only the fields SimplyBook declares, never an unset variable, and the
    values never shown again (they are kept encrypted with the credentials)."""
    import asyncio
    import functools

    from tests.servers import run_cli

    run = functools.partial(asyncio.to_thread, run_cli)
    env = {"CLINICBOT_SIMPLYBOOK_API_URL": fake.url, "SB_PASSWORD": fake.password, "SB_KEY": fake.api_key,
           "SB_SECRET": fake.secret_key}
    base = ["connection", "add", "simplybook", "--url", f"https://{fake.company}.simplybook.me", "--username",
            fake.user, "--password-env", "SB_PASSWORD"]
    assert (await run(["db", "upgrade"], tmp_path)).returncode == 0
    unknown = await run([*base, "--secret-env", "token=SB_KEY"], tmp_path, env)
    assert unknown.returncode != 0 and "takes no secret 'token'" in unknown.stderr + unknown.stdout
    unset = await run([*base, "--secret-env", "api_key=SB_NOPE"], tmp_path, env)
    assert unset.returncode != 0 and "SB_NOPE is not set" in unset.stderr + unset.stdout
    added = await run([*base, "--secret-env", "api_key=SB_KEY", "--secret-env", "secret_key=SB_SECRET"],
                      tmp_path, env)
    assert added.returncode == 0, added.stderr
    for command in (["connection", "list", "--json"], ["doctor"]):
        shown = await run(command, tmp_path, env)
        assert fake.secret_key not in shown.stdout + shown.stderr
        assert fake.api_key not in shown.stdout + shown.stderr
