"""Fixtures: a running fake Calendly and the adapter's bookings source for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.calendly.bookings import CalendlyBookings
from adapters.calendly.client import CalendlyClient
from adapters.kit.http import RetryPolicy
from tests.adapters.calendly.fakes.calendly import CalendlyFake


@pytest.fixture
async def fake() -> AsyncIterator[CalendlyFake]:
    server = await CalendlyFake().start()
    try:
        yield server
    finally:
        await server.close()


def source_for(fake: CalendlyFake, token: str | None = None) -> CalendlyBookings:
    client = CalendlyClient(fake.url, token or fake.token, policy=RetryPolicy(attempts=2, backoff=0.0, max_wait=0.0))
    return CalendlyBookings(client)


@pytest.fixture
async def source(fake: CalendlyFake) -> AsyncIterator[CalendlyBookings]:
    src = source_for(fake)
    try:
        yield src
    finally:
        await src.aclose()
