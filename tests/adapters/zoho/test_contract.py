"""The shared CalendarProvider contract, run against ZohoCalendar on the fake Zoho (data centre `eu`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from adapters.zoho import open_calendar
from adapters.zoho.provider import ZohoCalendar
from sync.runtime.settings import Settings
from tests.adapters.contract import CalendarProviderContract
from tests.adapters.zoho.conftest import CALENDAR, zoho_conn
from tests.adapters.zoho.fakes.zoho import ZohoFake


class TestZohoContract(CalendarProviderContract):
    #: Zoho events have no status, categories or private properties (a cancelled copy is written as free
    #: time, a tentative one as busy; links keep the remote ids instead of clinicbot's appointment id).
    preserved_fields: ClassVar[tuple[str, ...]] = ("summary", "description", "location", "transparent")

    @pytest.fixture
    async def provider(self, fake: ZohoFake, host: Settings) -> AsyncIterator[ZohoCalendar]:
        calendar = open_calendar(zoho_conn(fake), CALENDAR, host)
        try:
            yield calendar
        finally:
            await calendar.aclose()

    @pytest.fixture
    async def peer(self, fake: ZohoFake, host: Settings) -> AsyncIterator[ZohoCalendar]:
        calendar = open_calendar(zoho_conn(fake), CALENDAR, host)
        try:
            yield calendar
        finally:
            await calendar.aclose()
