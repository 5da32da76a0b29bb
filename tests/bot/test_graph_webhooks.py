"""Graph webhooks through the real route: the validation handshake, a good notification requests a
background sync, forged/unknown/garbage ones request nothing; lifecycle events are recorded for the
renewal job; an OAuth callback with a bad state changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from sync.runtime.core import Core
from sync.store.model import Connection, WebhookSubscription
from tests.bot.webhook_server import recording_client, subscribed_connection

STATE = "a-long-random-client-state"


@pytest.fixture
async def client(core: Core) -> AsyncIterator[tuple[TestClient, list[int]]]:
    async with recording_client(core) as found:
        yield found


async def _subscription(core: Core) -> int:
    return await subscribed_connection(core, "graph", "dr.lee@clinic.example", calendar=("me/calendar", "Calendar"),
                                       subscription=("sub-1", "me/events"), secret=STATE, lifetime=timedelta(days=3))


def _note(client_state: str | None = STATE, **extra: Any) -> dict[str, Any]:
    item = {
        "subscriptionId": "sub-1",
        "changeType": "updated",
        "clientState": client_state,
        "tenantId": "t",
        "resource": "Users/u/Events/e",
        "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
    }
    return {"value": [{**item, **extra}]}


async def test_validation_and_a_good_notification(core: Core, client: tuple[TestClient, list[int]]) -> None:
    c, synced = client
    conn_id = await _subscription(core)
    r = await c.post(f"/webhooks/graph/{conn_id}?validationToken=hello%20graph")
    assert r.status == 200 and await r.text() == "hello graph"
    r = await c.post(f"/webhooks/graph/{conn_id}", json=_note())
    assert r.status == 202
    await core.services.sync_queue.drain()
    assert synced == [conn_id]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (_note("forged"), 403),
        (_note(None), 403),
        (_note(subscriptionId="sub-unknown"), 404),
        (_note(changeType="boom"), 400),
        ({"value": []}, 400),
        ("garbage", 400),
    ],
)
async def test_bad_graph_notifications_sync_nothing(
    core: Core, client: tuple[TestClient, list[int]], body: Any, status: int
) -> None:
    c, synced = client
    conn_id = await _subscription(core)
    r = await (
        c.post(f"/webhooks/graph/{conn_id}", data=b"\x00garbage")
        if body == "garbage"
        else c.post(f"/webhooks/graph/{conn_id}", json=body)
    )
    assert r.status == status
    other = await c.post(f"/webhooks/graph/{conn_id + 1}", json=_note())  # right secret, wrong connection
    assert other.status == 404
    await asyncio.sleep(0)
    await core.services.sync_queue.drain()
    assert synced == []


async def test_lifecycle_events_are_recorded_for_renewal(core: Core, client: tuple[TestClient, list[int]]) -> None:
    c, synced = client
    conn_id = await _subscription(core)
    r = await c.post(
        f"/webhooks/graph/{conn_id}", json=_note(changeType=None, lifecycleEvent="reauthorizationRequired")
    )
    assert r.status == 202
    async with core.store.session() as s:
        row = await s.scalar(select(WebhookSubscription))
        assert row is not None and row.expires_at <= core.clock() and row.status == "active"
    r = await c.post(f"/webhooks/graph/{conn_id}", json=_note(changeType=None, lifecycleEvent="subscriptionRemoved"))
    assert r.status == 202
    async with core.store.session() as s:
        assert (await s.scalar(select(WebhookSubscription.status))) == "removed"
    # A removed subscription no longer authenticates notifications.
    assert (await c.post(f"/webhooks/graph/{conn_id}", json=_note())).status == 404
    await core.services.sync_queue.drain()
    assert set(synced) == {conn_id}


async def test_graph_oauth_callback_with_bad_state_changes_nothing(
    core: Core, client: tuple[TestClient, list[int]]
) -> None:
    c, _ = client
    r = await c.get("/oauth/graph/callback", params={"state": "made-up", "code": "x"})
    assert r.status == 400 and "connect outlook" in await r.text()
    assert (await c.get("/oauth/graph/callback", params={"error": "access_denied"})).status == 400
    assert (await c.get("/oauth/graph/callback")).status == 400
    async with core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(Connection)) == 0


async def test_a_notification_sent_in_two_writes_is_accepted(core: Core, client: tuple[TestClient, list[int]]) -> None:
    import json

    c, synced = client
    conn_id = await _subscription(core)
    body = json.dumps(_note()).encode()

    async def two_writes() -> AsyncIterator[bytes]:
        yield body[:40]
        await asyncio.sleep(0.05)  # the handler starts with only the first segment buffered
        yield body[40:]

    r = await c.post(f"/webhooks/graph/{conn_id}", data=two_writes(), headers={"Content-Type": "application/json"})
    assert r.status == 202
    await core.services.sync_queue.drain()
    assert synced == [conn_id]


async def test_a_large_valid_notification_is_accepted(core: Core, client: tuple[TestClient, list[int]]) -> None:
    c, synced = client
    conn_id = await _subscription(core)
    many = {"value": [_note()["value"][0] | {"resource": f"Users/u/Events/{'e' * 200}{i}"} for i in range(2200)]}  # about 900 kB
    r = await c.post(f"/webhooks/graph/{conn_id}", json=many)
    assert r.status == 202
    await core.services.sync_queue.drain()
    assert synced == [conn_id]


async def test_the_validation_echo_is_not_sniffed(core: Core, client: tuple[TestClient, list[int]]) -> None:
    c, _ = client
    r = await c.post("/webhooks/graph/1?validationToken=%3Cscript%3E")
    assert r.status == 200 and r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.content_type == "text/plain"


@pytest.mark.parametrize("path_id", ["²", "1" * 23, "9" * 5000, "١٢"])
async def test_odd_connection_ids_in_the_path_are_404(
    core: Core, client: tuple[TestClient, list[int]], path_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    c, synced = client
    await _subscription(core)
    for provider in ("graph", "google"):
        r = await c.post(f"/webhooks/{provider}/{path_id}", json=_note())
        assert r.status == 404
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert synced == []


async def test_deeply_nested_json_is_a_400(
    core: Core, client: tuple[TestClient, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    c, synced = client
    conn_id = await _subscription(core)
    r = await c.post(f"/webhooks/graph/{conn_id}", data="[" * 100_000, headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert synced == []
