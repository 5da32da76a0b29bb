"""The shared provider contract, run against GraphCalendar on the fake Graph."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.graph import open_calendar
from adapters.graph.provider import GraphCalendar
from sync.contract import CalendarProvider, ConnectionInfo
from sync.runtime.settings import Settings
from tests.adapters.contract import CalendarProviderContract
from tests.adapters.graph.fakes.graph import GraphFake


class TestGraphContract(CalendarProviderContract):
    @pytest.fixture
    async def provider(self, delegated: ConnectionInfo, settings: Settings) -> AsyncIterator[GraphCalendar]:
        calendar = open_calendar(delegated, "me/calendar", settings)
        assert isinstance(calendar, CalendarProvider)
        try:
            yield calendar
        finally:
            await calendar.aclose()

    @pytest.fixture
    async def peer(self, delegated: ConnectionInfo, settings: Settings) -> AsyncIterator[GraphCalendar]:
        calendar = open_calendar(delegated, "me/calendar", settings)
        try:
            yield calendar
        finally:
            await calendar.aclose()

    @pytest.fixture(autouse=True)
    def _server(self, fake: GraphFake) -> None:
        self.fake = fake

    async def expire_cursor(self, provider: CalendarProvider, cursor: str) -> str | None:
        self.fake.expire_delta_tokens()
        return cursor
