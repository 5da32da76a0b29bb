"""The shared CalendarProvider contract, run against GoogleCalendar on the fake Google."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.google.provider import GoogleCalendar
from adapters.kit.http import RetryPolicy
from sync.contract import CalendarProvider
from sync.runtime.settings import Settings
from tests.adapters.contract import CalendarProviderContract
from tests.adapters.google.conftest import PRIMARY, Saved, make_conn
from tests.adapters.google.fakes.google import GoogleFake


class TestGoogleContract(CalendarProviderContract):
    @pytest.fixture
    async def provider(self, fake: GoogleFake, gsettings: Settings) -> AsyncIterator[GoogleCalendar]:
        calendar = GoogleCalendar(
            make_conn(fake, Saved()), PRIMARY, gsettings, page_size=2, policy=RetryPolicy(backoff=0.01)
        )
        self.fake = fake
        try:
            yield calendar
        finally:
            await calendar.aclose()

    @pytest.fixture
    async def peer(self, fake: GoogleFake, gsettings: Settings) -> AsyncIterator[GoogleCalendar]:
        calendar = GoogleCalendar(make_conn(fake, Saved()), PRIMARY, gsettings)
        try:
            yield calendar
        finally:
            await calendar.aclose()

    async def expire_cursor(self, provider: CalendarProvider, cursor: str) -> str | None:
        self.fake.calendar(PRIMARY).invalidate_sync_tokens()
        return cursor
