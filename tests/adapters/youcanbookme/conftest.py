"""Fixtures: a running fake YouCanBookMe with two booking pages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.adapters.youcanbookme.fakes.youcanbookme import YouCanBookMeFake


@pytest.fixture
async def fake() -> AsyncIterator[YouCanBookMeFake]:
    server = await YouCanBookMeFake().start()
    server.add_profile("p-lee", "Dr Lee")
    server.add_profile("p-kim", "Dr Kim")
    try:
        yield server
    finally:
        await server.close()
