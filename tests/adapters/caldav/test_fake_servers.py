"""CalDAV behaviour Radicale does not show, against tests/adapters/caldav/fakes/caldav_server.py: servers without
sync-collection (ctag/etag fallback) and iCloud's habits (404 propstats, VEVENT comp-filter,
absolute home URL, no etag on PUT, the collection listed among sync changes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest

from adapters.caldav import CONNECT_HELP, CalDAVCalendar, discover, open_calendar
from sync.contract import AuthExpired, CalendarProvider, ConnectionInfo
from sync.contract.items import EventData, Window
from sync.runtime.settings import Settings
from tests.adapters.caldav.fakes.caldav_server import FakeCalDAV
from tests.adapters.contract import CalendarProviderContract

LOOPBACK_OK = Settings(CLINICBOT_ALLOW_PRIVATE_URLS=True)
WINDOW = Window.around(datetime.now(UTC))


def connection(server: FakeCalDAV, provider: str = "caldav") -> ConnectionInfo:
    return ConnectionInfo(
        provider=provider,
        account=server.user,
        config={"url": server.base_url + "/"},
        credentials={"username": server.user, "password": server.password},
    )


class _FakeServerContract(CalendarProviderContract):
    server_options: ClassVar[dict[str, Any]]
    provider_name: ClassVar[str] = "caldav"

    @pytest.fixture
    async def fake(self) -> AsyncIterator[FakeCalDAV]:
        async with FakeCalDAV(**self.server_options) as server:
            yield server

    @pytest.fixture
    async def provider(self, fake: FakeCalDAV) -> AsyncIterator[CalDAVCalendar]:
        calendar = open_calendar(connection(fake, self.provider_name), fake.calendar_url, LOOPBACK_OK)
        calendar.fake = fake  # type: ignore[attr-defined]
        yield calendar
        await calendar.aclose()

    @pytest.fixture
    async def peer(self, fake: FakeCalDAV) -> AsyncIterator[CalDAVCalendar]:
        calendar = open_calendar(connection(fake, self.provider_name), fake.calendar_url, LOOPBACK_OK)
        yield calendar
        await calendar.aclose()


class TestWithoutSyncCollection(_FakeServerContract):
    server_options: ClassVar[dict[str, Any]] = {"sync_collection": False}


class TestICloudStyle(_FakeServerContract):
    server_options: ClassVar[dict[str, Any]] = {"icloud": True}
    provider_name = "icloud"

    async def expire_cursor(self, provider: CalendarProvider, cursor: str) -> str | None:
        fake: FakeCalDAV = provider.fake  # type: ignore[attr-defined]
        fake.forget_tokens()
        return "s1:tok-0"


def event(n: int) -> EventData:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1, hours=n)
    return EventData(uid=f"ev-{n}", summary=f"visit {n}", start=start, end=start + timedelta(minutes=30))


async def test_fallback_checks_the_ctag_first_and_keeps_a_compact_cursor() -> None:
    async with FakeCalDAV(sync_collection=False) as fake:
        calendar = open_calendar(connection(fake), fake.calendar_url, LOOPBACK_OK)
        for n in range(200):
            await calendar.create(event(n), f"ev-{n}")
        listing = await calendar.changes(None, WINDOW)
        assert listing.full and len(listing.items) == 200
        assert listing.cursor and listing.cursor.startswith("e1:") and len(listing.cursor) < 8000
        fake.log.clear()
        quiet = await calendar.changes(listing.cursor, WINDOW)
        assert quiet.items == [] and quiet.deleted_ids == []
        assert fake.log == [("PROPFIND", "/1234/calendars/work/", "0")]  # one ctag look, nothing more
        await calendar.aclose()


async def test_icloud_discovery_skips_404_propstats_and_follows_an_absolute_home() -> None:
    async with FakeCalDAV(icloud=True) as fake:
        (calendar,) = await discover(connection(fake, "icloud"), LOOPBACK_OK)
        assert calendar.name == "Work"
        assert calendar.remote_id == fake.calendar_url
        assert calendar.extra and calendar.extra["supports_sync"] and calendar.extra["ctag"]
        assert not calendar.read_only
        assert ("PROPFIND", "/.well-known/caldav", "0") in fake.log


async def test_icloud_put_without_etag_gets_the_etag_by_propfind() -> None:
    async with FakeCalDAV(icloud=True) as fake:
        calendar = open_calendar(connection(fake, "icloud"), fake.calendar_url, LOOPBACK_OK)
        created = await calendar.create(event(1), "ev-1")
        assert created.etag == fake.items["ev-1.ics"][0]
        await calendar.aclose()


class TestPagedSyncWithoutBodies(_FakeServerContract):
    server_options: ClassVar[dict[str, Any]] = {"sync_page": 2, "sync_bodies": False}


async def test_truncated_sync_answers_are_followed_and_bodies_fetched_by_multiget() -> None:
    async with FakeCalDAV(sync_page=3, sync_bodies=False) as fake:
        calendar = open_calendar(connection(fake), fake.calendar_url, LOOPBACK_OK)
        for n in range(8):
            await calendar.create(event(n), f"ev-{n}")
        fake.log.clear()
        listing = await calendar.changes(None, WINDOW)
        assert sorted(i.event.summary for i in listing.items) == sorted(f"visit {n}" for n in range(8))
        reports = [entry for entry in fake.log if entry[0] == "REPORT"]
        assert len(reports) == 3 + 1  # three sync pages (3 + 3 + 2), then one multiget
        assert listing.cursor == f"s1:tok-{fake.journal[-1][0]}"
        await calendar.aclose()


async def test_registry_serves_icloud_and_defaults_to_caldav_icloud_com() -> None:
    from sync.integrations import registry

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="iCloud"'})

    conn = ConnectionInfo(
        provider="icloud",
        account="dr.lee@icloud.com",
        config={},
        credentials={"username": "dr.lee@icloud.com", "password": "abcd-efgh-ijkl-mnop"},
        transport=httpx.MockTransport(handler),
    )
    module = registry.calendar_slot("icloud")
    with pytest.raises(AuthExpired):
        await module.discover(conn, LOOPBACK_OK)
    assert str(seen[0].url) == "https://caldav.icloud.com/.well-known/caldav"
    assert seen[0].method == "PROPFIND" and seen[0].headers["Authorization"].startswith("Basic ")
    assert "App-Specific Passwords" in CONNECT_HELP["icloud"] and "appleid.apple.com" in CONNECT_HELP["icloud"]


async def test_change_pages_hand_on_pages_with_the_cursor_on_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.caldav import calendar as caldav_calendar

    monkeypatch.setattr(caldav_calendar, "PAGE_ITEMS", 3)
    async with FakeCalDAV(sync_page=4) as fake:
        calendar = open_calendar(connection(fake), fake.calendar_url, LOOPBACK_OK)
        for n in range(10):
            await calendar.create(event(n), f"ev-{n}")
        pages = [page async for page in calendar.change_pages(None, WINDOW)]
        assert [len(p.items) for p in pages] == [3, 1, 3, 1, 2, 0]  # 507 pages of 4, 4, 2 split by 3
        assert [p.cursor for p in pages[:-1]] == [None] * 5 and all(p.full for p in pages)
        assert pages[-1].cursor == f"s1:tok-{fake.journal[-1][0]}"
        assert sorted(i.event.uid for p in pages for i in p.items) == sorted(f"ev-{n}" for n in range(10))
        await calendar.delete("ev-3.ics", None)
        later = [page async for page in calendar.change_pages(pages[-1].cursor, WINDOW)]
        assert [(len(p.items), p.deleted_ids, p.full) for p in later] == [(0, ["ev-3.ics"], False), (0, [], False)]
        await calendar.aclose()
