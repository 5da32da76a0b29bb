"""SimplyBook.me over JSON-RPC against its loopback fake: login and re-login, errors that arrive with
HTTP 200, throttling, the cost of a quiet poll, read-first writes, callbacks that only ask to read the
booking they name, and that read, signed with md5(id + hash + secret key) through the public API."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapters.simplybook import company_login
from adapters.simplybook.bookings import SimplyBookBookings, callback_ref
from adapters.simplybook.client import signed_fetch_sign
from adapters.simplybook.webhooks import SimplyBookCallbacks
from sync.contract import AuthExpired, NotFound, RateLimited, Refused, WrongEtag
from sync.contract.booking import BookingCalendar
from sync.contract.integration import Channel, WebhookRequest
from sync.contract.items import RemoteItem, Window
from tests.adapters.simplybook.conftest import source_for
from tests.adapters.simplybook.fakes.simplybook import SimplyBookFake

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
WINDOW = Window(START - timedelta(days=30), START + timedelta(days=180))


def test_the_company_login_is_read_from_the_address() -> None:
    assert company_login("https://Clinic-North.simplybook.me/v2/") == "clinic-north"
    assert company_login("clinic") == "clinic"
    with pytest.raises(AuthExpired):
        company_login("https:///")


async def test_bookings_are_read_with_their_details_in_the_company_zone(
        fake: SimplyBookFake, source: SimplyBookBookings) -> None:
    booked = await fake.book("2", START, 45)
    await fake.book("3", START + timedelta(hours=1))
    staff = await source.staff()
    assert [(c.remote_id, c.name, c.timezone) for c in staff] == [("2", "Dr Lee", "Europe/London"),
                                                                   ("3", "Dr Kim", "Europe/London")]
    listed = await source.changes(None, WINDOW, staff="2")
    assert listed.full and [i.remote_id for i in listed.items] == [booked["id"]]
    event = listed.items[0].event
    assert (event.start, event.end - event.start) == (START, timedelta(minutes=45))
    assert (event.client_name, event.service, event.staff_ref, event.status) == ("Jane Roe", "Reflexology", "2",
                                                                                 "confirmed")
    fetched = await source.fetch(booked["id"])  # getBookingDetails names its fields differently
    assert fetched.event == event and fetched.etag == listed.items[0].etag


async def test_one_login_serves_many_calls_and_an_expired_token_logs_in_again(
        fake: SimplyBookFake) -> None:
    now = [0.0]
    source = source_for(fake, clock=lambda: now[0])
    try:
        await source.staff()
        await source.changes(None, WINDOW)
        assert fake.calls("getUserToken") == 1
        fake.expire_tokens()  # the server ends the token early
        await source.changes(None, WINDOW)
        assert fake.calls("getUserToken") == 2 and fake.calls("getBookings") == 3
        now[0] += 3001  # older than the configured lifetime: a fresh login before the call
        await source.changes(None, WINDOW)
        assert fake.calls("getUserToken") == 3 and fake.calls("getBookings") == 4
    finally:
        await source.aclose()


async def test_login_refusals_become_auth_expired_in_words(fake: SimplyBookFake) -> None:
    wrong = source_for(fake, password="guess")
    other = source_for(fake, company="nobody")
    try:
        with pytest.raises(AuthExpired) as err:
            await wrong.staff()
        assert "user login or password" in err.value.user_message
        with pytest.raises(AuthExpired) as err:
            await other.staff()
        assert "company login does not exist" in err.value.user_message
    finally:
        await wrong.aclose()
        await other.aclose()


async def test_rpc_errors_with_http_200_are_mapped(fake: SimplyBookFake, source: SimplyBookBookings) -> None:
    with pytest.raises(NotFound):
        await source.fetch("999999")
    booked = await fake.book("2", START)
    fake.refuse[int(booked["id"])] = (-32075, "Selected time is not available")
    with pytest.raises(Refused) as err:
        await source.reschedule(booked["id"], START + timedelta(hours=1), START + timedelta(hours=1, minutes=30), None)
    assert err.value.user_message == "SimplyBook refused: Selected time is not available."
    assert fake.bookings[int(booked["id"])]["start_date"] == START.astimezone(ZoneInfo("Europe/London")).strftime(
        "%Y-%m-%d %H:%M:%S")
    # A call refused again right after a fresh login is a permission the user lacks: refused, not a loop.
    logins = fake.calls("getUserToken")
    fake.denied = {"getUnitList"}
    with pytest.raises(Refused, match="may not call getUnitList"):
        await source.staff()
    assert fake.calls("getUserToken") == logins + 1
    # A password changed at SimplyBook: the re-login is refused, and the connection needs reconnecting.
    fake.denied, fake.password = set(), "changed"
    fake.expire_tokens()
    with pytest.raises(AuthExpired):
        await source.staff()


async def test_throttling_is_rate_limited_with_its_retry_after(fake: SimplyBookFake) -> None:
    source = source_for(fake, attempts=1)
    try:
        await source.staff()
        fake.throttle = 1
        with pytest.raises(RateLimited) as err:
            await source.changes(None, WINDOW)
        assert err.value.retry_after == 1.0
        assert (await source.changes(None, WINDOW)).full
    finally:
        await source.aclose()


async def test_a_quiet_poll_costs_one_request_per_window(fake: SimplyBookFake, source: SimplyBookBookings) -> None:
    for n in range(20):
        await fake.book("2", START + timedelta(days=n))
    await source.changes(None, WINDOW, staff="2")  # login and company zone, once
    before = len(fake.requests)
    for _ in range(5):
        found = await source.changes(None, WINDOW, staff="2")
        assert len(found.items) == 20
    assert len(fake.requests) - before == 5 and fake.calls("getBookingDetails") == 0


async def test_writes_read_first_refuse_a_stale_version_and_never_repeat(
        fake: SimplyBookFake, source: SimplyBookBookings) -> None:
    booked = await fake.book("2", START)
    item = (await source.changes(None, WINDOW)).items[0]
    later = START + timedelta(hours=2)
    moved = await source.reschedule(item.remote_id, later, later + timedelta(minutes=30), item.etag)
    assert moved.event.start == later and moved.etag != item.etag and moved.remote_id == booked["id"]
    edits = fake.calls("editBook")
    again = await source.reschedule(item.remote_id, later, later + timedelta(minutes=30), item.etag)
    assert again.event.start == later and fake.calls("editBook") == edits  # the retry sent nothing
    with pytest.raises(WrongEtag):
        await source.cancel(item.remote_id, "stale", item.etag)
    assert fake.bookings[int(booked["id"])]["is_confirm"] == "1"
    cancelled = await source.cancel(item.remote_id, "client ill", moved.etag)
    assert cancelled.event.status == "cancelled" and fake.calls("cancelBooking") == 1
    assert (await source.cancel(item.remote_id, "again", moved.etag)).event.status == "cancelled"
    assert fake.calls("cancelBooking") == 1
    listed = await source.changes(None, WINDOW)
    assert [(i.remote_id, i.event.status) for i in listed.items] == [(booked["id"], "cancelled")]


@dataclass
class Desk:
    company: str = "clinic"
    connection_id: int = 4
    seen: set[str] = field(default_factory=set)
    synced: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def channel(self, channel_id: str) -> Channel | None:
        return None

    async def channels(self) -> list[Channel]:
        return [Channel("simplybook-callback-1", "https://c.example/webhooks/simplybook/4", self.company,
                        datetime.now(UTC) + timedelta(days=1), "2")]

    async def sync(self, channel: Channel, reason: str) -> None:
        raise AssertionError("a SimplyBook callback reads the booking it names, not the window")

    async def sync_items(self, channel: Channel, external_ids: Sequence[str], reason: str) -> None:
        self.synced.append(reason)
        self.items.extend(external_ids)

    async def renew_soon(self, channel: Channel) -> None: ...

    async def forget(self, channel: Channel) -> None: ...

    async def first_delivery(self, key: str) -> bool:
        new = key not in self.seen
        self.seen.add(key)
        return new


def _callback(**fields: object) -> WebhookRequest:
    body = {"booking_id": "101", "booking_hash": "ab" * 16, "company": "clinic", "notification_type": "create",
            "webhook_timestamp": 1759919125, **fields}
    return WebhookRequest("POST", {"content-type": "application/json"}, {}, json.dumps(body).encode())


async def test_a_callback_only_asks_for_a_sync_once_and_only_for_its_company() -> None:
    hooks, desk = SimplyBookCallbacks(), Desk()
    assert (await hooks.handle(_callback(), desk)).status == 200 and desk.synced == ["booking.create"]
    assert (await hooks.handle(_callback(), desk)).status == 200 and desk.synced == ["booking.create"]  # a repeat
    assert (await hooks.handle(_callback(notification_type="cancel"), desk)).status == 200
    assert desk.synced == ["booking.create", "booking.cancel"]
    assert (await hooks.handle(_callback(company="othercompany", booking_id="102"), desk)).status == 404
    assert (await hooks.handle(_callback(booking_id="1; drop"), desk)).status == 400
    assert (await hooks.handle(_callback(booking_id="١٠٤"), desk)).status == 400  # 0-9 only (issue 21)
    assert (await hooks.handle(_callback(booking_id="²"), desk)).status == 400
    assert (await hooks.handle(_callback(notification_type="new_client", booking_id="103"), desk)).status == 200
    assert (await hooks.handle(WebhookRequest("POST", {}, {}, b"{not json"), desk)).status == 400
    assert (await hooks.handle(WebhookRequest("GET", {}, {}, b""), desk)).status == 405
    assert desk.synced == ["booking.create", "booking.cancel"]
    assert desk.items == ["101:" + "ab" * 16] * 2  # the booking's id and hash: what the read is signed with
    assert (await hooks.handle(_callback(booking_id="104", booking_hash="not hex!"), desk)).status == 400
    assert (await hooks.handle(_callback(booking_id="105", booking_hash=""), desk)).status == 200
    assert desk.items[-1] == "105"  # no hash: read through the admin API by id


def test_the_read_signature_is_md5_of_id_hash_and_secret() -> None:
    # md5 of "4cfae2bs3cret", computed with coreutils' md5sum
    assert signed_fetch_sign("4", "cfae2b", "s3cret") == "a913b0faca78e49d1b27c9eb59feda9f"


async def test_a_callback_booking_is_read_by_id_signed_with_the_secret(fake: SimplyBookFake) -> None:
    """One read per callback, never a window listing; a made-up hash or another company's id reads
    nothing (NotFound), so a lying callback changes nothing."""
    source = source_for(fake, api_key=fake.api_key, secret_key=fake.secret_key)
    try:
        booked = await fake.book("2", START, 45)
        item = await source.fetch(callback_ref(booked["id"], booked["hash"]))
        assert (item.remote_id, item.event.start, item.event.client_name, item.event.staff_ref) == (
            booked["id"], START, "Jane Roe", "2")
        assert fake.calls("getToken") == 1 and fake.calls("getBookings") == 0
        assert [p for p, m in fake.requests if m == "getBookingDetails"] == ["/"]  # the public API, signed
        with pytest.raises(NotFound):  # a made-up hash: the sign does not match
            await source.fetch(callback_ref(booked["id"], "0" * 32))
        other = await fake.book("2", START + timedelta(hours=3), company="otherclinic")
        with pytest.raises(NotFound):  # another company's booking with its own real hash
            await source.fetch(callback_ref(other["id"], other["hash"]))
        fake.expire_tokens()  # the public token expired: one login more, then the read
        assert (await source.fetch(callback_ref(booked["id"], booked["hash"]))).remote_id == booked["id"]
        assert fake.calls("getToken") == 2
    finally:
        await source.aclose()


async def test_without_the_secret_a_callback_booking_is_read_through_the_admin_api(fake: SimplyBookFake) -> None:
    source = source_for(fake)
    try:
        booked = await fake.book("3", START)
        item = await source.fetch(callback_ref(booked["id"], booked["hash"]))
        assert item.remote_id == booked["id"] and item.event.staff_ref == "3"
        assert [p for p, m in fake.requests if m == "getBookingDetails"] == ["/admin"]
        assert fake.calls("getToken") == 0
        other = await fake.book("2", START, company="otherclinic")
        with pytest.raises(NotFound):
            await source.fetch(callback_ref(other["id"], other["hash"]))
    finally:
        await source.aclose()


async def test_a_wrong_api_key_is_a_reconnect_in_words(fake: SimplyBookFake) -> None:
    source = source_for(fake, api_key="wrong", secret_key=fake.secret_key)
    try:
        booked = await fake.book("2", START)
        with pytest.raises(AuthExpired) as err:
            await source.fetch(callback_ref(booked["id"], booked["hash"]))
        assert "did not accept the key" in err.value.user_message
    finally:
        await source.aclose()


async def test_an_item_read_fetches_each_booking_once_for_all_calendars(fake: SimplyBookFake) -> None:
    """The engine's item read (BookingCalendar.changes_of): one fetch per named booking for all the
    connection's calendars (the memo), the booking on its provider's calendar, gone from the other's,
    and nothing at all for an id the API does not return."""
    source = source_for(fake, api_key=fake.api_key, secret_key=fake.secret_key)
    try:
        booked = await fake.book("2", START)
        other = await fake.book("2", START, company="otherclinic")
        refs = [callback_ref(booked["id"], booked["hash"]), callback_ref(other["id"], other["hash"])]
        memo: dict[str, RemoteItem | None] = {}
        lee = await BookingCalendar(source, "2", own_source=False).changes_of(refs, WINDOW, memo)
        kim = await BookingCalendar(source, "3", own_source=False).changes_of(refs, WINDOW, memo)
        assert [i.remote_id for i in lee.items] == [booked["id"]] and lee.deleted_ids == [] and not lee.full
        assert kim.items == [] and kim.deleted_ids == [booked["id"]]  # not (or no longer) Dr Kim's
        assert fake.calls("getBookingDetails") == 2  # once per reference, not per calendar
    finally:
        await source.aclose()
