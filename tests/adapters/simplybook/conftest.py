"""Fixtures: a running fake SimplyBook.me and the adapter's bookings source for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.kit.http import RetryPolicy
from adapters.simplybook.bookings import SimplyBookBookings
from adapters.simplybook.client import SimplyBookClient
from tests.adapters.simplybook.fakes.simplybook import SimplyBookFake


@pytest.fixture
async def fake() -> AsyncIterator[SimplyBookFake]:
    server = await SimplyBookFake().start()
    server.add_unit("2", "Dr Lee")
    server.add_unit("3", "Dr Kim")
    try:
        yield server
    finally:
        await server.close()


def source_for(fake: SimplyBookFake, *, password: str | None = None, company: str | None = None,
               clock: object = None, attempts: int = 2, api_key: str | None = None,
               secret_key: str | None = None) -> SimplyBookBookings:
    """The admin API's source; with `api_key` and `secret_key`, callback reads go through the public API."""
    policy = RetryPolicy(attempts=attempts, backoff=0.0, max_wait=0.0)
    client = SimplyBookClient(fake.url, company or fake.company, fake.user, password or fake.password,
                              policy=policy,
                              **({"clock": clock} if clock is not None else {}))  # type: ignore[arg-type]
    public = SimplyBookClient.public(fake.url, company or fake.company, api_key, policy=policy) \
        if api_key is not None else None
    return SimplyBookBookings(client, public=public, secret_key=secret_key or "")


@pytest.fixture
async def source(fake: SimplyBookFake) -> AsyncIterator[SimplyBookBookings]:
    src = source_for(fake)
    try:
        yield src
    finally:
        await src.aclose()
