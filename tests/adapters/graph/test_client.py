"""The per-mailbox gate: at most 4 slots, first come first served, a cancelled waiter loses nothing."""

from __future__ import annotations

import asyncio

import pytest

from adapters.graph.client import MailboxGate


async def test_gate_holds_four_slots_and_serves_in_order() -> None:
    gate = MailboxGate()
    order: list[str] = []

    async def take(name: str, weight: int) -> None:
        await gate.acquire(weight)
        order.append(name)

    await gate.acquire(3)
    batch = asyncio.create_task(take("batch", 4))
    await asyncio.sleep(0)
    single = asyncio.create_task(take("single", 1))  # fits, but must not overtake the batch
    await asyncio.sleep(0)
    assert order == []
    await gate.release(3)
    await asyncio.wait_for(batch, 1)
    assert order == ["batch"] and not single.done()
    await gate.release(4)
    await asyncio.wait_for(single, 1)
    assert order == ["batch", "single"]


async def test_cancelled_waiter_gives_its_place_back() -> None:
    gate = MailboxGate()
    await gate.acquire(4)
    waiter = asyncio.create_task(gate.acquire(2))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await gate.release(4)
    await asyncio.wait_for(gate.acquire(4), 1)  # all four slots are free again
