"""Fixtures: a running fake Acuity and the adapter's bookings source for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.acuity.bookings import AcuityBookings
from adapters.acuity.client import AcuityClient
from adapters.kit.http import RetryPolicy
from tests.adapters.acuity.fakes.acuity import AcuityFake


@pytest.fixture
async def fake() -> AsyncIterator[AcuityFake]:
    server = await AcuityFake().start()
    try:
        yield server
    finally:
        await server.close()


def source_for(fake: AcuityFake, key: str | None = None, rate: float = 9.0) -> AcuityBookings:
    client = AcuityClient(fake.url, httpx.BasicAuth(fake.user_id, key or fake.api_key), rate=rate,
                          policy=RetryPolicy(attempts=2, backoff=0.0, max_wait=0.0))
    return AcuityBookings(client, api_key=key or fake.api_key)


@pytest.fixture
async def source(fake: AcuityFake) -> AsyncIterator[AcuityBookings]:
    src = source_for(fake)
    try:
        yield src
    finally:
        await src.aclose()
