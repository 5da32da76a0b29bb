"""Fixtures: a running fake Zoho (data centres `eu` and `com`) and settings pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.zoho.client import AccountLock
from sync.contract import ConnectionInfo
from sync.runtime.settings import Settings
from tests.adapters.zoho.fakes.zoho import ZohoFake
from tests.conftest import settings_with

CALENDAR = "zLeeCal01=="


@pytest.fixture
async def fake() -> AsyncIterator[ZohoFake]:
    server = await ZohoFake().start()
    server.add_calendar("eu", CALENDAR, "Dr Lee", default=True)
    server.add_calendar("eu", "zRooms02==", "Rooms", privilege="view")
    AccountLock._until.clear()
    try:
        yield server
    finally:
        await server.close()
        AccountLock._until.clear()


def zoho_host(fake: ZohoFake, **more: object) -> Settings:
    return settings_with(zoho_client_id=fake.client_id, zoho_client_secret=fake.client_secret,
                         zoho_accounts_url=f"{fake.url}/accounts/{{dc}}", zoho_api_url=f"{fake.url}/calendar/{{dc}}",
                         public_url="https://clinic.example.org", **more)


@pytest.fixture
def host(fake: ZohoFake) -> Settings:
    return zoho_host(fake)


def zoho_conn(fake: ZohoFake, dc: str = "eu") -> ConnectionInfo:
    return ConnectionInfo("zoho", "lee@clinic.example", {"dc": dc}, fake.grant(dc))
