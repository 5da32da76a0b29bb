"""The Square booking source against the fake: listing, details, writes by version, and Square's errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.square.bookings import SquareBookings, booking_event
from sync.contract import AlreadyExists, AuthExpired, NotFound, RateLimited, Refused, WrongEtag
from sync.contract.booking import BookingCalendar
from sync.contract.items import NO_SHOW, Window
from tests.adapters.square.conftest import source_for
from tests.adapters.square.fakes.square import SquareFake

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)


async def _clinic(fake: SquareFake) -> None:
    fake.add_staff("TM-A", "Alex")
    fake.add_staff("TM-B", "Billie")
    fake.add_staff("TM-C", "Cam")
    fake.add_customer("C1", "Jane", "Roe", "jane@example.org")
    fake.add_service("SV1", "Deep tissue massage")


async def test_staff_are_calendars_across_pages(fake: SquareFake, source: SquareBookings) -> None:
    await _clinic(fake)
    found = await source.staff()
    assert [(c.remote_id, c.name, c.primary) for c in found] == [
        ("TM-A", "Alex", True), ("TM-B", "Billie", False), ("TM-C", "Cam", False)]


async def test_window_is_read_in_slices_and_pages_with_details(fake: SquareFake, source: SquareBookings) -> None:
    await _clinic(fake)
    for day in (0, 1, 2, 40, 90):
        await fake.book("TM-A", START + timedelta(days=day), 45, customer_id="C1", service="SV1", note="window seat")
    await fake.book("TM-B", START, 30)
    window = Window(START - timedelta(days=1), START + timedelta(days=120))
    found = await source.changes(None, window, staff="TM-A")
    assert found.full and len(found.items) == 5
    first = found.items[0]
    assert first.etag == "0" and first.event.staff_ref == "TM-A"
    assert (first.event.client_name, first.event.client_email, first.event.service) == (
        "Jane Roe", "jane@example.org", "Deep tissue massage")
    assert first.event.end - first.event.start == timedelta(minutes=45)
    assert first.event.description == "window seat"
    # Customer and catalog are read once per sync, not once per booking.
    assert sum(1 for _, p in fake.requests if p.startswith("/v2/customers/")) == 1
    assert sum(1 for _, p in fake.requests if p.startswith("/v2/catalog/")) == 1
    assert len((await source.changes(None, window)).items) == 6


async def test_reschedule_and_cancel_by_version(fake: SquareFake, source: SquareBookings) -> None:
    await _clinic(fake)
    booking = await fake.book("TM-A", START, 30)
    moved = await source.reschedule(booking["id"], START + timedelta(hours=2), START + timedelta(hours=3), "0")
    assert moved.etag == "1" and moved.event.start == START + timedelta(hours=2)
    assert fake.bookings[booking["id"]]["appointment_segments"][0]["duration_minutes"] == 60
    with pytest.raises(WrongEtag):
        await source.cancel(booking["id"], "x", "0")
    cancelled = await source.cancel(booking["id"], "x", "1")
    assert cancelled.event.status == "cancelled" and fake.bookings[booking["id"]]["version"] == 2


async def test_version_conflict_status_is_configurable(fake: SquareFake, source: SquareBookings) -> None:
    fake.version_conflict_status = 400
    booking = await fake.book("TM-A", START, 30)
    await fake.change(booking["id"], seller_note="moved by phone")
    with pytest.raises(WrongEtag):
        await source.reschedule(booking["id"], START, START + timedelta(minutes=30), "0")


async def test_idempotency_key_replay(fake: SquareFake, source: SquareBookings) -> None:
    booking = await fake.book("TM-A", START, 30)
    payload = {"idempotency_key": "k1", "booking": {"version": 0, "start_at": "2030-01-01T10:00:00Z"}}
    first = await source.client.request("PUT", f"/v2/bookings/{booking['id']}", json=payload)
    again = await source.client.request("PUT", f"/v2/bookings/{booking['id']}", json=payload)
    assert first == again and fake.bookings[booking["id"]]["version"] == 1
    other = {"idempotency_key": "k1", "booking": {"version": 1, "start_at": "2030-01-02T10:00:00Z"}}
    with pytest.raises(AlreadyExists, match="IDEMPOTENCY_KEY_REUSED"):
        await source.client.request("PUT", f"/v2/bookings/{booking['id']}", json=other)


async def test_square_errors_map_onto_the_contract(fake: SquareFake) -> None:
    fake.grant("old", expires_in=timedelta(seconds=-1))
    expired = source_for(fake, "old")
    unknown = source_for(fake, "never-granted")
    fake.grant("sq-token")
    good = source_for(fake)
    try:
        with pytest.raises(AuthExpired, match="ACCESS_TOKEN_EXPIRED"):
            await expired.fetch("x")
        with pytest.raises(AuthExpired):
            await unknown.fetch("x")
        with pytest.raises(NotFound):
            await good.fetch("nope")
        fake.throttle = 5
        with pytest.raises(RateLimited):
            await good.fetch("nope")
        fake.throttle = 1
        with pytest.raises(NotFound):
            await good.fetch("nope")  # one 429 is waited out, then the real answer
    finally:
        for s in (expired, unknown, good):
            await s.aclose()


async def test_booking_calendar_routes_writes_and_refuses_creates(fake: SquareFake, source: SquareBookings) -> None:
    booking = await fake.book("TM-A", START, 30)
    cal = BookingCalendar(source, "TM-A", own_source=False)
    item = await cal.get(booking["id"])
    with pytest.raises(Refused, match="does not make"):
        await cal.create(item.event, "k")
    moved = await cal.update(booking["id"], item.event.with_changes(start=START + timedelta(hours=1),
                                                                   end=START + timedelta(hours=2)), item.etag)
    assert moved.etag == "1"
    gone = await cal.update(booking["id"], moved.event.with_changes(status="cancelled"), moved.etag)
    assert gone.event.status == "cancelled"
    with pytest.raises(NotFound, match="another staff member"):
        await BookingCalendar(source, "TM-B", own_source=False).get(booking["id"])


async def test_subscriptions_are_checked_and_remade_for_a_new_url(fake: SquareFake, source: SquareBookings) -> None:
    from adapters.square.webhooks import SquarePush

    push = SquarePush()
    cal = BookingCalendar(source, "TM-A", own_source=False)
    first = await push.open(cal, "http://127.0.0.1:9/webhooks/square/1", None)
    assert not first.renewed and fake.subscriptions[first.channel.remote_id].signature_key == first.channel.secret
    kept = await push.open(cal, "http://127.0.0.1:9/webhooks/square/1", first.channel)
    assert kept.in_place and kept.channel.remote_id == first.channel.remote_id
    moved = await push.open(cal, "http://127.0.0.1:8/webhooks/square/1", first.channel)
    assert moved.retire == first.channel and moved.channel.resource_id == "http://127.0.0.1:8/webhooks/square/1"
    fake.subscriptions[moved.channel.remote_id].enabled = False
    again = await push.open(cal, "http://127.0.0.1:8/webhooks/square/1", moved.channel)
    assert again.channel.remote_id != moved.channel.remote_id and again.retire == moved.channel
    await push.stop(cal, moved.channel)
    await push.stop(cal, moved.channel)  # already gone is fine
    assert moved.channel.remote_id not in fake.subscriptions


async def test_a_token_due_within_a_day_is_refreshed_and_saved(fake: SquareFake) -> None:
    from adapters.square import open_source
    from sync.contract import ConnectionInfo
    from tests.conftest import settings_with

    code = fake.authorize()
    host = settings_with(square_api_url=fake.url, square_oauth_url=fake.url, square_client_id=fake.client_id,
                         square_client_secret=fake.client_secret)
    from adapters.square.oauth import redeem

    creds = await redeem(host, {"grant_type": "authorization_code", "code": code})
    old = creds["access_token"]
    fake.tokens[old] = datetime.now(UTC) + timedelta(hours=2)  # due: inside the one-day margin
    creds["expires_at"] = fake.tokens[old].strftime("%Y-%m-%dT%H:%M:%SZ")
    saved: list[dict[str, object]] = []

    async def save(document: dict[str, object]) -> None:
        saved.append(document)

    src = open_source(ConnectionInfo("square", "M1", {}, creds, save_credentials=save), host)
    try:
        await _clinic(fake)
        assert [c.remote_id for c in await src.staff()]
        assert len(saved) == 1 and saved[0]["access_token"] != old
        assert saved[0]["refresh_token"] == creds["refresh_token"]
        await src.staff()
        assert len(saved) == 1  # refreshed once, then the new token is used
    finally:
        await src.aclose()


def test_a_no_show_is_its_own_status_and_the_customers_phone_comes_along() -> None:
    booking = {"id": "bk1", "status": "NO_SHOW", "start_at": "2026-12-10T10:00:00Z", "version": 3,
               "appointment_segments": [{"team_member_id": "TM-A", "duration_minutes": 45}]}
    event = booking_event(booking, client={"name": "Jane Roe", "email": "jane@example.org",
                                           "phone": "+44 20 7946 0018"}, service="Massage")
    assert event.status == "confirmed" and NO_SHOW in event.categories
    assert event.client_phone == "+44 20 7946 0018"
    cancelled = booking_event({**booking, "status": "CANCELLED_BY_CUSTOMER"})
    assert cancelled.status == "cancelled" and NO_SHOW not in cancelled.categories
