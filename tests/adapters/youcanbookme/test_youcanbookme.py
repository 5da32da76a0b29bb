"""YouCanBookMe against its loopback fake: paged listings and what a quiet poll costs, read-first cancels,
reschedules refused in words, the vendor's errors, and webhooks whose only secret is the path token."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from adapters.kit.http import RetryPolicy
from adapters.youcanbookme import account_id
from adapters.youcanbookme.bookings import PAGE_SIZE, YouCanBookMeBookings
from adapters.youcanbookme.client import YouCanBookMeClient
from adapters.youcanbookme.webhooks import PathTokenWebhooks
from sync.contract import AuthExpired, NotFound, RateLimited, Refused, WrongEtag
from sync.contract.integration import Channel, WebhookRequest
from sync.contract.items import Window
from tests.adapters.youcanbookme.fakes.youcanbookme import YouCanBookMeFake

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
WINDOW = Window(START - timedelta(days=30), START + timedelta(days=180))


def source_for(fake: YouCanBookMeFake, key: str | None = None, attempts: int = 2) -> YouCanBookMeBookings:
    client = YouCanBookMeClient(fake.url, fake.account, httpx.BasicAuth(fake.login, key or fake.api_key),
                                policy=RetryPolicy(attempts=attempts, backoff=0.0, max_wait=0.0))
    return YouCanBookMeBookings(client)


def test_the_account_id_ends_the_address() -> None:
    assert account_id("https://api.youcanbook.me/v1/acct-1/") == "acct-1" and account_id("acct-2") == "acct-2"
    with pytest.raises(AuthExpired):
        account_id("https://api.youcanbook.me/v1/a b")


async def test_listing_pages_and_a_quiet_poll_costs_one_request_per_page(fake: YouCanBookMeFake) -> None:
    source = source_for(fake)
    try:
        assert [c.remote_id for c in await source.staff()] == ["p-lee", "p-kim"]
        before = fake.calls("/bookings?")
        assert (await source.changes(None, WINDOW, staff="p-lee")).items == []
        assert fake.calls("/bookings?") - before == 1  # nothing found: one request
        for n in range(PAGE_SIZE + 20):
            await fake.book("p-lee", START + timedelta(hours=n))
        before = fake.calls("/bookings?")
        listed = await source.changes(None, WINDOW, staff="p-lee")
        assert len(listed.items) == PAGE_SIZE + 20 and listed.full
        assert fake.calls("/bookings?") - before == 2 and fake.calls("/bookings/") == 0  # per page, not per booking
        item = listed.items[0]
        assert (item.event.client_name, item.event.staff_ref, item.event.service) == ("Jane Roe", "p-lee", "Massage")
    finally:
        await source.aclose()


async def test_cancel_reads_first_and_reschedule_is_refused_in_words(fake: YouCanBookMeFake) -> None:
    source = source_for(fake)
    try:
        booked = await fake.book("p-lee", START)
        item = await source.fetch(booked["id"])
        with pytest.raises(Refused) as refused:
            await source.reschedule(item.remote_id, START + timedelta(hours=1), START + timedelta(hours=2), item.etag)
        assert "link in their confirmation email" in refused.value.user_message
        fake.bookings[booked["id"]].update(startsAt=(START + timedelta(hours=3)).isoformat(),  # moved by the client
                                           endsAt=(START + timedelta(hours=4)).isoformat())
        with pytest.raises(WrongEtag):
            await source.cancel(item.remote_id, "stale", item.etag)
        fresh = await source.fetch(booked["id"])
        cancelled = await source.cancel(item.remote_id, "client ill", fresh.etag)
        assert cancelled.event.status == "cancelled"
        patches = sum(1 for m, _ in fake.requests if m == "PATCH")
        await source.cancel(item.remote_id, "again", fresh.etag)
        assert sum(1 for m, _ in fake.requests if m == "PATCH") == patches == 1
    finally:
        await source.aclose()


async def test_vendor_errors_are_mapped(fake: YouCanBookMeFake) -> None:
    wrong, source = source_for(fake, key="guess"), source_for(fake, attempts=1)
    try:
        with pytest.raises(AuthExpired):
            await wrong.staff()
        with pytest.raises(NotFound):
            await source.fetch("nope")
        other = await fake.book("p-lee", START, account="acct-2")
        with pytest.raises(NotFound):  # another account's booking is not this key's to read
            await source.fetch(other["id"])
        fake.throttle = 1
        with pytest.raises(RateLimited) as limited:
            await source.staff()
        assert limited.value.retry_after == 1.0
    finally:
        await wrong.aclose()
        await source.aclose()


@dataclass
class Desk:
    token: str = "T" * 43
    connection_id: int = 5
    seen: set[str] = field(default_factory=set)
    synced: list[str] = field(default_factory=list)

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def channel(self, channel_id: str) -> Channel | None:
        return None

    async def channels(self) -> list[Channel]:
        return [Channel("youcanbookme-1", "https://c.example/webhooks/youcanbookme/5", self.token,
                        datetime.now(UTC) + timedelta(days=1), "p-lee")]

    async def sync(self, channel: Channel, reason: str) -> None:
        self.synced.append(reason)

    async def renew_soon(self, channel: Channel) -> None: ...

    async def forget(self, channel: Channel) -> None: ...

    async def first_delivery(self, key: str) -> bool:
        new = key not in self.seen
        self.seen.add(key)
        return new


async def test_only_the_right_path_token_asks_for_a_sync() -> None:
    hooks, desk = PathTokenWebhooks(), Desk()
    body = b'{"bookingId": "b1", "event": "booked"}'
    for token in ("", "T" * 42, "U" * 43, "T" * 44):
        assert (await hooks.handle(WebhookRequest("POST", {}, {}, body, token), desk)).status == 404
    assert desk.synced == [] and desk.seen == set()
    assert (await hooks.handle(WebhookRequest("POST", {}, {}, body, desk.token), desk)).status == 200
    assert (await hooks.handle(WebhookRequest("POST", {}, {}, body, desk.token), desk)).status == 200  # a repeat
    assert desk.synced == ["booking"]
    assert (await hooks.handle(WebhookRequest("GET", {}, {}, b"", desk.token), desk)).status == 405
