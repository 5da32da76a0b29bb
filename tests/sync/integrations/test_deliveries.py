"""The webhook replay memory: a key is accepted once, remembered across a restart, and bounded."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from sync.boot import open_core
from sync.integrations import deliveries
from sync.runtime.core import Core
from sync.store.model import Connection, WebhookDelivery


async def _connection(core: Core) -> int:
    async with core.store.session() as s:
        conn = Connection(practice_id=1, provider="square", account="M1")
        s.add(conn)
        await s.flush()
        return conn.id


async def test_a_key_passes_once_even_at_once_and_after_a_restart(core: Core) -> None:
    conn = await _connection(core)
    results = await asyncio.gather(*(deliveries.first_delivery(core, "square", conn, "event:e1") for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert await deliveries.first_delivery(core, "acuity", conn, "event:e1")  # another integration's key
    again = open_core(core.settings)
    try:
        assert not await deliveries.first_delivery(again, "square", conn, "event:e1")
        assert await deliveries.first_delivery(again, "square", conn, "x" * 300)  # long keys are hashed
        assert not await deliveries.first_delivery(again, "square", conn, "x" * 300)
    finally:
        await again.close()


async def test_the_memory_is_bounded(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deliveries, "KEEP", 10)
    monkeypatch.setattr(deliveries, "TRIM_SLACK", 5)
    conn = await _connection(core)
    for n in range(60):
        assert await deliveries.first_delivery(core, "square", conn, f"event:{n}")
    async with core.store.session() as s:
        held = await s.scalar(select(func.count()).select_from(WebhookDelivery))
    assert held is not None and 10 <= held <= 15
    assert not await deliveries.first_delivery(core, "square", conn, "event:59")  # the newest are kept
