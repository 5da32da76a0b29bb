"""Zoho against its loopback fake: sign-in per data centre, token refresh, 429 and the temporary lock,
and the cost of a poll (31-day pages for a listing, one request for a quiet changed-since poll)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.zoho import open_calendar
from adapters.zoho.auth import ZohoAuth, ZohoTokens
from adapters.zoho.client import AccountLock, ZohoClient
from adapters.zoho.oauth import ZohoOAuth
from adapters.zoho.provider import ZohoCalendar
from adapters.zoho.settings import ZohoSettings
from sync.contract import AuthExpired, ConnectionInfo, RateLimited, Refused
from sync.contract.items import EventData, Window
from sync.runtime.settings import Settings
from tests.adapters.zoho.conftest import CALENDAR, zoho_conn
from tests.adapters.zoho.fakes.zoho import ZohoFake

WINDOW = Window.around(datetime.now(UTC).replace(microsecond=0))


async def test_sign_in_redeems_the_code_at_the_persons_data_centre(fake: ZohoFake, host: Settings) -> None:
    flow = ZohoOAuth()
    start = await flow.begin(host, redirect_uri="https://clinic.example.org/oauth/zoho/callback", options={})
    parts = urlsplit(start.url)
    assert start.url.startswith(f"{fake.url}/accounts/com/oauth/v2/auth?")  # sign-in starts at the default one
    query = parse_qs(parts.query)
    assert query["access_type"] == ["offline"] and query["state"] == [start.state]
    code = fake.authorize("eu")
    done = await flow.finish(host, secret=start.secret, query={
        "code": code, "state": start.state, "location": "eu", "accounts-server": f"{fake.url}/accounts/eu"})
    assert done.config == {"dc": "eu"} and done.credentials and done.credentials["dc"] == "eu"
    assert fake.calls("POST", "/accounts/eu/oauth/v2/token") == 1 and fake.calls("GET", "/calendar/eu/") == 1
    assert [(c.remote_id, c.primary, c.read_only) for c in done.calendars] == [(CALENDAR, True, False),
                                                                              ("zRooms02==", False, True)]
    assert done.account == "lee@clinic.example"


@pytest.mark.parametrize("query", [
    {"location": "mars"},
    {"location": "eu", "accounts-server": "https://accounts.attacker.example"},
])
async def test_a_callback_naming_an_unknown_data_centre_is_refused(
        fake: ZohoFake, host: Settings, query: dict[str, str]) -> None:
    code = fake.authorize("eu")
    with pytest.raises(Refused):
        await ZohoOAuth().finish(host, secret={"redirect_uri": "x"}, query={"code": code, **query})
    assert fake.calls("POST") == 0  # the client secret went nowhere


async def test_a_used_code_is_refused_although_zoho_answers_200(fake: ZohoFake, host: Settings) -> None:
    code = fake.authorize("eu")
    query = {"code": code, "location": "eu"}
    await ZohoOAuth().finish(host, secret={"redirect_uri": "x"}, query=query)
    with pytest.raises(AuthExpired):
        await ZohoOAuth().finish(host, secret={"redirect_uri": "x"}, query=query)


async def test_tokens_refresh_at_the_data_centre_and_after_a_401(fake: ZohoFake, host: Settings) -> None:
    saved: list[dict[str, Any]] = []

    async def save(creds: dict[str, Any]) -> None:
        saved.append(creds)

    conn = ConnectionInfo("zoho", "lee", {"dc": "eu"}, fake.grant("eu"), save_credentials=save)
    calendar = open_calendar(conn, CALENDAR, host)
    try:
        await calendar.changes(None, WINDOW)
        fake.expire_access_tokens()  # revoked early: the API answers 401 INVALID_OAUTHTOKEN
        await calendar.changes(None, WINDOW)
    finally:
        await calendar.aclose()
    assert len(saved) == 2 and all(c["dc"] == "eu" for c in saved)
    assert fake.calls("POST", "/accounts/eu/") == 2 and fake.calls("POST", "/accounts/com/") == 0
    revoked = ConnectionInfo("zoho", "lee", {"dc": "eu"}, {"refresh_token": "1000.gone", "dc": "eu"})
    gone = open_calendar(revoked, CALENDAR, host)
    try:
        with pytest.raises(AuthExpired):
            await gone.changes(None, WINDOW)
    finally:
        await gone.aclose()


async def test_a_429_locks_the_account_and_no_call_is_made_until_it_ends(fake: ZohoFake, host: Settings) -> None:
    now = [1000.0]
    lock = AccountLock("eu:test", clock=lambda: now[0])
    tokens = ZohoTokens(host, zoho_conn(fake))
    first = ZohoCalendar(ZohoClient(f"{fake.url}/calendar/eu", ZohoAuth(tokens), lock=lock, lock_seconds=30), CALENDAR)
    second = ZohoCalendar(ZohoClient(f"{fake.url}/calendar/eu", ZohoAuth(tokens), lock=lock, lock_seconds=30),
                          "zRooms02==")
    try:
        await first.changes(None, WINDOW)
        fake.per_minute = 0  # the next call is over Zoho's limit
        with pytest.raises(RateLimited) as err:
            await first.changes(None, WINDOW)
        assert err.value.retry_after == 30
        made = len(fake.requests)
        for calendar in (first, second):  # the whole account waits: calls in the lock would extend it
            with pytest.raises(RateLimited):
                await calendar.changes(None, WINDOW)
        assert len(fake.requests) == made
        fake.per_minute, fake.clock = 1000, lambda: 10_000_000_000.0
        now[0] += 31
        assert (await second.changes(None, WINDOW)).full
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_listing_reads_31_day_pages_and_a_quiet_poll_costs_one_request(
        fake: ZohoFake, host: Settings) -> None:
    calendar = open_calendar(zoho_conn(fake), CALENDAR, host)
    try:
        start = WINDOW.start + timedelta(days=1, hours=9)
        for n in range(40):
            at = start + timedelta(days=5 * n)
            await calendar.create(EventData(uid=f"u{n}", summary=f"visit {n}", start=at, end=at + timedelta(hours=1),
                                            tzid="Europe/Berlin"), f"key-{n}")
        before = fake.calls("GET", "/events?range=")
        listing = await calendar.changes(None, WINDOW)
        pages = fake.calls("GET", "/events?range=") - before
        assert len(listing.items) == 40 and pages == -(-(WINDOW.end - WINDOW.start).days // 31)
        cursor = listing.cursor
        for _ in range(3):
            before = len(fake.requests)
            quiet = await calendar.changes(cursor, WINDOW)
            assert quiet.items == [] and quiet.deleted_ids == [] and len(fake.requests) - before == 1
            cursor = quiet.cursor
    finally:
        await calendar.aclose()


def test_settings_need_the_data_centre_placeholder() -> None:
    with pytest.raises(ValueError, match="dc"):
        ZohoSettings(_env_file=None, zoho_api_url="https://calendar.zoho.com")  # type: ignore[call-arg]
    own = ZohoSettings(_env_file=None)  # type: ignore[call-arg]
    assert own.api("eu") == "https://calendar.zoho.eu" and own.accounts("com.au") == "https://accounts.zoho.com.au"
