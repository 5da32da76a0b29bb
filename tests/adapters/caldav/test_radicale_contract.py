"""CalDAV provider against a real Radicale: the shared contract, with auth none and htpasswd."""

from __future__ import annotations

import hashlib
from typing import ClassVar

import pytest

from adapters.caldav import CalDAVCalendar
from sync.contract import CalendarProvider
from tests.adapters.contract import CalendarProviderContract

pytestmark = pytest.mark.radicale


class _RadicaleContract(CalendarProviderContract):
    server_fixture: ClassVar[str]

    @pytest.fixture
    async def provider(self, caldav_pair: tuple[CalDAVCalendar, CalDAVCalendar]) -> CalDAVCalendar:
        return caldav_pair[0]

    @pytest.fixture
    async def peer(self, caldav_pair: tuple[CalDAVCalendar, CalDAVCalendar]) -> CalDAVCalendar:
        return caldav_pair[1]

    async def expire_cursor(self, provider: CalendarProvider, cursor: str) -> str | None:
        # What a client sees once Radicale has dropped a token (max_sync_token_age): a well-formed
        # token it no longer holds the state for.
        assert cursor.startswith("s1:http://radicale.org/ns/sync/")
        forgotten = hashlib.sha256(b"a token from long ago").hexdigest()
        return f"s1:http://radicale.org/ns/sync/{forgotten}"


class TestRadicaleNoAuth(_RadicaleContract):
    server_fixture = "radicale_none"


class TestRadicaleHtpasswd(_RadicaleContract):
    server_fixture = "radicale_htpasswd"
