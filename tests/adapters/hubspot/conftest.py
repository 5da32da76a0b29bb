"""Fixtures: a running fake HubSpot, and clients of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.hubspot.client import HubSpotClient
from adapters.kit.http import RetryPolicy
from tests.adapters.hubspot.fakes.hubspot import HubSpotFake


@pytest.fixture
async def fake() -> AsyncIterator[HubSpotFake]:
    server = await HubSpotFake().start()
    try:
        yield server
    finally:
        await server.close()


def client_for(fake: HubSpotFake, token: str | None = None) -> HubSpotClient:
    """A client that does not sleep through 429s itself: the waits reach the caller."""
    return HubSpotClient(fake.url, token or fake.token, policy=RetryPolicy(attempts=1, backoff=0.0, max_wait=0.0))
