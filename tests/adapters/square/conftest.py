"""Fixtures: a running fake Square on a loopback port, and the adapter's bookings source for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.kit.http import RetryPolicy
from adapters.square.bookings import SquareBookings
from adapters.square.client import SquareClient
from tests.adapters.square.fakes.square import SquareFake


@pytest.fixture
async def fake() -> AsyncIterator[SquareFake]:
    server = await SquareFake().start()
    try:
        yield server
    finally:
        await server.close()


def source_for(fake: SquareFake, token: str = "sq-token", attempts: int = 2) -> SquareBookings:  # noqa: S107
    async def bearer() -> str:
        return token

    client = SquareClient(fake.url, bearer, policy=RetryPolicy(attempts=attempts, backoff=0.0, max_wait=0.0))
    return SquareBookings(client)


@pytest.fixture
async def source(fake: SquareFake) -> AsyncIterator[SquareBookings]:
    fake.grant("sq-token")
    src = source_for(fake)
    try:
        yield src
    finally:
        await src.aclose()
