"""The Calendly booking source against the fake: signature, reschedule chains as one booking, cancel, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.calendly.bookings import CalendlyBookings
from adapters.calendly.webhooks import sign, verify_signature
from sync.contract import AuthExpired, NotFound, RateLimited, Refused
from sync.contract.items import NO_SHOW, Window
from tests.adapters.calendly.conftest import source_for
from tests.adapters.calendly.fakes.calendly import CalendlyFake

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)


def test_signature_vector_computed_independently_and_staleness() -> None:
    body = b'{"event":"invitee.created","payload":{}}'
    header = "t=1700000000,v1=149e12d4dae7a2496047f78192094074e5c4869caa2a0e485d5823409742453e"
    assert sign(body, "signing_key_test", 1700000000) == header
    at = datetime.fromtimestamp(1700000000 + 120, UTC)
    assert verify_signature(body, header, "signing_key_test", at)
    assert not verify_signature(body, header, "signing_key_test", at + timedelta(minutes=2))  # over 3 minutes old
    assert not verify_signature(body + b" ", header, "signing_key_test", at)
    assert not verify_signature(body, header.replace("t=1700000000", "t=1700000001"), "signing_key_test", at)
    assert not verify_signature(body, "v1=abc", "signing_key_test", at)
    with pytest.raises(ValueError, match="signing key"):
        verify_signature(body, header, "", at)


async def test_staff_and_a_reschedule_chain_are_one_booking(fake: CalendlyFake, source: CalendlyBookings) -> None:
    lee = fake.add_user("Dr Lee")
    fake.add_user("Dr Kim")
    fake.add_user("Dr Ray")
    assert [c.remote_id for c in await source.staff()] == [lee, f"{fake.url}/users/U2", f"{fake.url}/users/U3"]
    first = await fake.book(lee, START, 45)
    for n in range(3):
        await fake.book(lee, START + timedelta(days=1, hours=n))
    root = first["uri"].rsplit("/", 1)[-1]
    moved = await fake.reschedule_by_invitee(root, START + timedelta(hours=3))
    again = await fake.reschedule_by_invitee(moved["uri"].rsplit("/", 1)[-1], START + timedelta(hours=5))
    window = Window(START - timedelta(days=1), START + timedelta(days=5))
    found = await source.changes(None, window, staff=lee)
    assert len(found.items) == 4 and found.full
    (chain,) = [i for i in found.items if i.remote_id == root]
    assert chain.event.start == START + timedelta(hours=5) and chain.event.status == "confirmed"
    assert chain.event.end - chain.event.start == timedelta(minutes=45)
    assert (chain.event.client_name, chain.event.service, chain.event.staff_ref) == (
        "Jane Roe", "Initial consultation", lee)
    assert "Back pain" in chain.event.description
    fetched = await source.fetch(root)
    assert fetched.event.start == chain.event.start and fetched.etag.startswith(again["uri"].rsplit("/", 1)[-1])


async def test_cancel_reaches_calendly_and_reschedule_is_refused_with_the_link(
    fake: CalendlyFake, source: CalendlyBookings
) -> None:
    lee = fake.add_user("Dr Lee")
    event = await fake.book(lee, START)
    root = event["uri"].rsplit("/", 1)[-1]
    with pytest.raises(Refused, match=r"reschedule link: https://calendly\.com/reschedulings/"):
        await source.reschedule(root, START + timedelta(hours=1), START + timedelta(hours=2), None)
    done = await source.cancel(root, "patient sick", None)
    assert done.event.status == "cancelled" and fake.events[root]["status"] == "canceled"
    assert (await source.cancel(root, "again", None)).event.status == "cancelled"  # no second cancellation


async def test_calendly_errors(fake: CalendlyFake, source: CalendlyBookings) -> None:
    fake.add_user("Dr Lee")
    bad = source_for(fake, token="wrong")
    try:
        with pytest.raises(AuthExpired):
            await bad.staff()
    finally:
        await bad.aclose()
    with pytest.raises(NotFound):
        await source.fetch("EVnope")
    fake.throttle = 5
    with pytest.raises(RateLimited) as limited:
        await source.fetch("EVnope")
    assert limited.value.retry_after == 0.0


async def test_a_booking_moved_out_of_the_window_is_still_one_booking(
    fake: CalendlyFake, source: CalendlyBookings
) -> None:
    lee = fake.add_user("Dr Lee")
    event = await fake.book(lee, START)
    root = event["uri"].rsplit("/", 1)[-1]
    await fake.reschedule_by_invitee(root, START + timedelta(days=60))
    found = await source.changes(None, Window(START - timedelta(days=1), START + timedelta(days=5)), staff=lee)
    (item,) = found.items
    assert item.remote_id == root and item.event.start == START + timedelta(days=60)
    assert item.event.status == "confirmed"


async def test_an_invitees_no_show_and_reminder_number_reach_the_booking(
    fake: CalendlyFake, source: CalendlyBookings
) -> None:
    user = fake.add_user("Dr Lee")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    event = await fake.book(user, start)
    event_id = event["uri"].rsplit("/", 1)[-1]
    fake.invitees[event_id].update(text_reminder_number="+44 20 7946 0018",
                                   no_show={"uri": f"{fake.url}/invitee_no_shows/NS1"})
    item = await source.fetch(event_id)
    assert item.event.client_phone == "+44 20 7946 0018"
    assert NO_SHOW in item.event.categories and item.event.status == "confirmed"
