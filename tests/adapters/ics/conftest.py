"""A loopback feed server and an ICS provider that may reach it (loopback needs allowing)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.adapters.ics.fakes.ics_feed import FeedServer


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server
