"""Fixtures: a running fake Nylas on a random loopback port, settings pointing at it, and a provider
for a fresh grant's primary calendar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.kit.http import RetryPolicy
from adapters.nylas.provider import NylasCalendar
from sync.contract import ConnectionInfo
from sync.runtime.settings import Settings
from tests.adapters.nylas.fakes.nylas import Grant, NylasFake
from tests.conftest import settings_with


@pytest.fixture
async def fake() -> AsyncIterator[NylasFake]:
    server = await NylasFake().start()
    try:
        yield server
    finally:
        await server.close()


def nylas_settings_for(fake: NylasFake, **more: Any) -> Settings:
    return settings_with(nylas_api_url=fake.url, nylas_client_id=fake.client_id, nylas_api_key=fake.api_key,
                         **more)


@pytest.fixture
def nsettings(fake: NylasFake) -> Settings:
    return nylas_settings_for(fake, public_url="https://clinic.example.org")


@pytest.fixture
def grant(fake: NylasFake) -> Grant:
    return fake.add_grant("dr.lee@work.example")


def make_conn(grant: Grant, **config: Any) -> ConnectionInfo:
    return ConnectionInfo(provider="nylas", account=grant.email, config={"grant_id": grant.id, **config},
                          credentials={"grant_id": grant.id})


def primary(grant: Grant) -> str:
    return next(c.id for c in grant.calendars.values() if c.primary)


@pytest.fixture
async def calendar(fake: NylasFake, nsettings: Settings, grant: Grant) -> AsyncIterator[NylasCalendar]:
    provider = NylasCalendar(make_conn(grant), primary(grant), nsettings,
                             policy=RetryPolicy(attempts=3, backoff=0.0, max_wait=1.0), page_size=2)
    try:
        yield provider
    finally:
        await provider.aclose()
