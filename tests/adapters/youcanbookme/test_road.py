"""YouCanBookMe through the running server: connecting prints the secret webhook address once and stores
its token only encrypted; a wrong token gets 404 and changes nothing; the right token with a body that lies
changes nothing beyond what the API says; a real booking becomes an appointment; a cancel from chat reaches
YouCanBookMe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select, text

from sync.integrations.push import ensure_push
from sync.runtime.core import Core
from sync.services import appointments as services
from sync.store.model import Appointment, WebhookDelivery
from tests.adapters.road import appointments as _appointments
from tests.adapters.road import served
from tests.adapters.road import settle as _settle
from tests.adapters.youcanbookme.fakes.youcanbookme import YouCanBookMeFake

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3, hours=2)


@pytest.fixture
async def world(backend: str, tmp_path: Path, fake: YouCanBookMeFake) -> AsyncIterator[tuple[Core, int, str]]:
    async with served(backend, tmp_path, fake, "youcanbookme", f"https://api.youcanbook.me/v1/{fake.account}",
                      staff="p-lee", username=fake.login, password=fake.api_key) as (core, added, _):
        assert added.webhook_url is not None
        fake.webhook_url = added.webhook_url
        yield core, added.connection_id, added.webhook_url


async def test_secret_address_lying_body_booking_and_cancel(world: tuple[Core, int, str],
                                                            fake: YouCanBookMeFake) -> None:
    core, conn_id, hook = world
    token = hook.rsplit("/", 1)[-1]
    assert len(token) >= 22 and hook.endswith(f"/webhooks/youcanbookme/{conn_id}/{token}")
    async with core.store.session() as s:  # kept only encrypted
        creds = (await s.execute(text("SELECT credentials FROM connection"))).scalar_one()
        subs = (await s.execute(text("SELECT secret FROM webhook_subscription"))).scalars().all()
    assert token not in str(creds) and subs == []
    assert (await ensure_push(core, conn_id)).created == 2
    async with core.store.session() as s:
        assert all(token not in str(x) for x in (await s.execute(text("SELECT secret FROM webhook_subscription")))
                   .scalars().all())
    body = b'{"bookingId": "x", "event": "booked"}'
    async with aiohttp.ClientSession() as http:
        for wrong in (hook[:-1] + ("A" if hook[-1] != "A" else "B"), hook.rsplit("/", 1)[0],
                      hook.replace(f"/{conn_id}/", f"/{conn_id + 1}/")):
            answer = await http.post(wrong, data=body)
            assert answer.status == 404, wrong
    async with core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    await _settle(core, fake)
    assert await _appointments(core) == []
    # The right address, with a body naming another account's booking: only what the API says counts.
    other = await fake.book("p-lee", START + timedelta(hours=5), account="acct-2", first="Someone")
    assert await fake.post(b'{"bookingId": "%s", "event": "booked"}' % other["id"].encode()) == 200
    await _settle(core, fake)
    assert await _appointments(core) == []
    booked = await fake.book("p-lee", START)
    await _settle(core, fake)
    (row,) = await _appointments(core)
    assert row.client_name == "Jane Roe" and row.practitioner_id is not None
    async with core.store.session() as s:
        appt = await s.get(Appointment, row.id)
        assert appt is not None
        await services.cancel(s, core.bus, appt, "client ill", "slack:T1/U1")
    await _settle(core, fake)
    assert fake.bookings[booked["id"]]["cancelled"] is True


def test_the_cli_shows_the_webhook_address_once(tmp_path: Path) -> None:
    import asyncio
    import functools
    import json

    from tests.servers import run_cli

    async def scenario() -> None:
        run = functools.partial(asyncio.to_thread, run_cli)
        fake = await YouCanBookMeFake().start()
        fake.add_profile("p-lee", "Dr Lee")
        env = {"CLINICBOT_YOUCANBOOKME_API_URL": fake.url, "CLINICBOT_PUBLIC_URL": "https://clinic.example.org",
               "YCBM_API_KEY": fake.api_key}
        try:
            assert (await run(["db", "upgrade"], tmp_path)).returncode == 0
            added = await run(["connection", "add", "youcanbookme", "--url",
                               f"https://api.youcanbook.me/v1/{fake.account}", "--username", fake.login,
                               "--password-env", "YCBM_API_KEY"], tmp_path, env)
            assert added.returncode == 0, added.stderr
            assert "Webhook address (shown only now" in added.stdout
            assert "https://clinic.example.org/webhooks/youcanbookme/1/" in added.stdout
            token = added.stdout.split("/webhooks/youcanbookme/1/", 1)[1].split()[0]
            for command in (["connection", "list", "--json"], ["sync", "status", "--json"], ["doctor"]):
                shown = await run(command, tmp_path, env)
                assert token not in shown.stdout + shown.stderr, command
            listed = json.loads((await run(["connection", "list", "--json"], tmp_path, env)).stdout)
            assert listed and listed[0]["provider"] == "youcanbookme"
        finally:
            await fake.close()

    asyncio.run(scenario())
