"""The shared CalendarProvider contract, run against NylasCalendar on the fake Nylas."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from adapters.kit.http import RetryPolicy
from adapters.nylas.provider import NylasCalendar
from sync.contract import CalendarProvider
from sync.runtime.settings import Settings
from tests.adapters.contract import CalendarProviderContract
from tests.adapters.nylas.conftest import make_conn, primary
from tests.adapters.nylas.fakes.nylas import Grant, NylasFake


class TestNylasContract(CalendarProviderContract):
    @pytest.fixture
    async def provider(self, fake: NylasFake, nsettings: Settings, grant: Grant) -> AsyncIterator[NylasCalendar]:
        calendar = NylasCalendar(make_conn(grant), primary(grant), nsettings, page_size=2,
                                 policy=RetryPolicy(backoff=0.0))
        try:
            yield calendar
        finally:
            await calendar.aclose()

    @pytest.fixture
    async def peer(self, fake: NylasFake, nsettings: Settings, grant: Grant) -> AsyncIterator[NylasCalendar]:
        calendar = NylasCalendar(make_conn(grant), primary(grant), nsettings)
        try:
            yield calendar
        finally:
            await calendar.aclose()

    async def expire_cursor(self, provider: CalendarProvider, cursor: str) -> str | None:
        # Nylas keeps no cursor: clinicbot's own is the only one that can go stale (an older format).
        return json.dumps({**json.loads(cursor), "v": 0})
