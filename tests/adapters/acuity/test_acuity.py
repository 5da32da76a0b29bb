"""The Acuity booking source against the fake: signature, listing, read-before-write, Acuity's refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.acuity import bookings as acuity_bookings
from adapters.acuity.bookings import AcuityBookings
from adapters.acuity.webhooks import sign, verify_signature
from sync.contract import AuthExpired, NotFound, RateLimited, Refused, WrongEtag
from sync.contract.items import Window
from tests.adapters.acuity.conftest import source_for
from tests.adapters.acuity.fakes.acuity import AcuityFake

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)


def test_signature_vector_computed_independently() -> None:
    body = b"action=scheduled&id=123&calendarID=1&appointmentTypeID=2"
    assert sign(body, "apikey_test") == "+S/nirMTgTqPiFeCd9XjEF/5feEbwd46yfGmlzcMut8="
    assert verify_signature(body, "+S/nirMTgTqPiFeCd9XjEF/5feEbwd46yfGmlzcMut8=", "apikey_test")
    assert not verify_signature(body + b"&x=1", "+S/nirMTgTqPiFeCd9XjEF/5feEbwd46yfGmlzcMut8=", "apikey_test")
    assert not verify_signature(body, "+S/nirMTgTqPiFeCd9XjEF/5feEbwd46yfGmlzcMut8=", "other")
    with pytest.raises(ValueError, match="API key"):
        verify_signature(body, "x", "")


async def test_listing_splits_full_windows_and_keeps_cancelled(
    fake: AcuityFake, source: AcuityBookings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(acuity_bookings, "PAGE_MAX", 2)
    fake.add_calendar(1, "Dr Lee's calendar")
    for hours in range(0, 10, 2):
        await fake.book(1, START + timedelta(hours=hours), 45)
    await fake.book(2, START, 30)
    fake.appointments[min(fake.appointments)]["canceled"] = True
    found = await source.changes(None, Window(START - timedelta(days=1), START + timedelta(days=3)), staff="1")
    assert found.full and len(found.items) == 5
    by_start = sorted(found.items, key=lambda i: i.event.start)
    assert by_start[0].event.status == "cancelled" and by_start[1].event.status == "confirmed"
    event = by_start[1].event
    assert (event.client_name, event.client_email, event.service, event.location, event.staff_ref) == (
        "Jane Roe", "jane@example.org", "Acupuncture", "Room 2", "1")
    assert event.end - event.start == timedelta(minutes=45)


async def test_writes_read_first_and_refusals_come_back_in_words(fake: AcuityFake, source: AcuityBookings) -> None:
    appt = await fake.book(1, START, 30)
    item = await source.fetch(str(appt["id"]))
    moved = await source.reschedule(item.remote_id, START + timedelta(hours=1), START + timedelta(hours=2), item.etag)
    assert moved.event.start == START + timedelta(hours=1)
    writes = sum(1 for m, _ in fake.requests if m == "PUT")
    again = await source.reschedule(item.remote_id, START + timedelta(hours=1), START + timedelta(hours=2), item.etag)
    assert again.event.start == moved.event.start and sum(1 for m, _ in fake.requests if m == "PUT") == writes
    with pytest.raises(WrongEtag):
        await source.reschedule(item.remote_id, START + timedelta(hours=3), START + timedelta(hours=4), item.etag)
    fake.refuse[appt["id"]] = "reschedule_too_close"
    with pytest.raises(Refused) as refused:
        await source.reschedule(item.remote_id, START + timedelta(hours=3), START + timedelta(hours=4), moved.etag)
    assert refused.value.user_message == "Acuity refused: it is too close to the appointment to reschedule it in Acuity."
    cancelled = await source.cancel(item.remote_id, "sick", moved.etag)
    assert cancelled.event.status == "cancelled"
    assert (await source.cancel(item.remote_id, "sick", None)).event.status == "cancelled"


async def test_errors_and_the_request_rate(fake: AcuityFake, source: AcuityBookings) -> None:
    bad = source_for(fake, key="wrong")
    try:
        with pytest.raises(AuthExpired):
            await bad.fetch("1")
    finally:
        await bad.aclose()
    with pytest.raises(NotFound):
        await source.fetch("99")
    fake.throttle = 5
    with pytest.raises(RateLimited):
        await source.fetch("99")
    fake.throttle = 0
    fake.per_second = 10
    fake.starts.clear()
    paced = source_for(fake, rate=8.0)
    try:
        for _ in range(12):  # more than Acuity's 10 a second: paced, never refused
            with pytest.raises(NotFound):
                await paced.fetch("99")
    finally:
        await paced.aclose()
