"""Webhook routing: a good Google notification requests one background sync; forged, unknown and
garbage ones are rejected and request nothing. OAuth callbacks with bad states change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from sync.runtime.core import Core
from sync.store.model import Connection, OAuthState
from tests.bot.webhook_server import recording_client, subscribed_connection

#: Each test's gate that lets its slow fake syncs finish, by core.
_RELEASE: dict[int, asyncio.Event] = {}


@pytest.fixture
async def client(core: Core) -> AsyncIterator[tuple[TestClient, list[int]]]:
    release = _RELEASE[id(core)] = asyncio.Event()
    async with recording_client(core, release) as found:
        yield found


async def _channel(core: Core) -> int:
    return await subscribed_connection(core, "google", "cal@example.org", calendar=("primary", "Primary"),
                                       subscription=("chan-1", "res-1"), secret="tok-secret",
                                       lifetime=timedelta(days=1))


def _headers(**over: str) -> dict[str, str]:
    h = {
        "X-Goog-Channel-ID": "chan-1",
        "X-Goog-Channel-Token": "tok-secret",
        "X-Goog-Resource-ID": "res-1",
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": "7",
    }
    h.update(over)
    return h


async def test_google_notification_requests_one_sync(core: Core, client: tuple[TestClient, list[int]]) -> None:
    c, synced = client
    conn_id = await _channel(core)
    for _ in range(3):
        r = await c.post(f"/webhooks/google/{conn_id}", headers=_headers())
        assert r.status == 200
    _RELEASE[id(core)].set()
    await core.services.sync_queue.drain()
    assert synced and set(synced) == {conn_id} and len(synced) <= 2


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Goog-Channel-Token": "forged"}, 403),
        ({"X-Goog-Resource-ID": "other"}, 403),
        ({"X-Goog-Channel-ID": "nope"}, 404),
        ({"X-Goog-Resource-State": "garbage"}, 400),
        ({"X-Goog-Message-Number": "x"}, 400),
    ],
)
async def test_bad_google_notifications_sync_nothing(
    core: Core, client: tuple[TestClient, list[int]], headers: dict[str, str], status: int
) -> None:
    c, synced = client
    conn_id = await _channel(core)
    r = await c.post(f"/webhooks/google/{conn_id}", headers=_headers(**headers), data=b"\x00garbage")
    assert r.status == status
    _RELEASE[id(core)].set()
    await core.services.sync_queue.drain()
    assert synced == []


async def test_unknown_provider_or_connection(client: tuple[TestClient, list[int]]) -> None:
    c, _ = client
    assert (await c.post("/webhooks/nope/1")).status == 404
    assert (await c.post("/webhooks/google/abc")).status == 404


async def test_oauth_callback_with_unknown_state_changes_nothing(
    core: Core, client: tuple[TestClient, list[int]]
) -> None:
    c, _ = client
    r = await c.get("/oauth/google/callback", params={"state": "made-up", "code": "x"})
    assert r.status == 400 and "connect google" in await r.text()
    r = await c.get("/oauth/google/callback", params={"error": "access_denied"})
    assert r.status == 400
    assert (await c.get("/oauth/unknown/callback")).status == 404
    async with core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(Connection)) == 0
        assert await s.scalar(select(func.count()).select_from(OAuthState)) == 0
