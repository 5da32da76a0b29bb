"""The in-memory reference provider passes the shared provider contract."""

from __future__ import annotations

import pytest

from sync.contract import CalendarProvider
from tests.adapters.contract import CalendarProviderContract
from tests.fakes.memory_calendar import MemoryCalendar, MemoryServer


class TestMemoryCalendarContract(CalendarProviderContract):
    @pytest.fixture
    def server(self) -> MemoryServer:
        return MemoryServer()

    @pytest.fixture
    async def provider(self, server: MemoryServer) -> MemoryCalendar:
        return MemoryCalendar(server)

    @pytest.fixture
    async def peer(self, server: MemoryServer) -> MemoryCalendar:
        return MemoryCalendar(server)

    async def expire_cursor(self, provider: CalendarProvider, cursor: str) -> str | None:
        assert isinstance(provider, MemoryCalendar)
        provider.server.expire_cursors()
        return cursor
