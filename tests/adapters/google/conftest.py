"""Fixtures: a running fake Google on a random loopback port, settings pointing at it, and a
provider for the fake's primary calendar with a granted token pair."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.google.provider import GoogleCalendar
from adapters.kit.http import RetryPolicy
from sync.contract import ConnectionInfo
from sync.runtime.settings import Settings
from tests.adapters.google.fakes.google import GoogleFake
from tests.conftest import settings_with

PRIMARY = "primary-owner@example.org"


@pytest.fixture
async def fake() -> AsyncIterator[GoogleFake]:
    server = await GoogleFake().start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def gsettings(fake: GoogleFake) -> Settings:
    return settings_with(
        google_api_url=fake.url,
        google_drive_url=fake.url,
        google_oauth_url=fake.url,
        google_auth_url=f"{fake.url}/o/oauth2/v2/auth",
        google_client_id=fake.oauth.client_id,
        google_client_secret=fake.oauth.client_secret,
        public_url="https://clinic.example.org",
    )


class Saved:
    """Records what the adapter hands to ConnectionInfo.save_credentials."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    async def __call__(self, document: dict[str, Any]) -> None:
        self.documents.append(document)


class Sleeps:
    """A sleep that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def saved() -> Saved:
    return Saved()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_conn(fake: GoogleFake, saved: Saved, **config: Any) -> ConnectionInfo:
    return ConnectionInfo(
        provider="google",
        account=PRIMARY,
        config=dict(config),
        credentials=fake.oauth.grant(),
        save_credentials=saved,
    )


@pytest.fixture
async def calendar(
    fake: GoogleFake, gsettings: Settings, saved: Saved, sleeps: Sleeps
) -> AsyncIterator[GoogleCalendar]:
    provider = GoogleCalendar(
        make_conn(fake, saved),
        PRIMARY,
        gsettings,
        policy=RetryPolicy(attempts=4, backoff=0.01, max_wait=5.0),
        sleep=sleeps,
        page_size=3,
    )
    try:
        yield provider
    finally:
        await provider.aclose()
