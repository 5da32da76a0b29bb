"""TimeTap against its loopback fake: the signed session token and its renewal, 93-day spans and pages (a
quiet poll costs one request per span), read-first cancels, moves refused in words, the vendor's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.kit.http import RetryPolicy
from adapters.timetap.bookings import PAGE_SIZE, SPAN_DAYS, TimeTapBookings
from adapters.timetap.client import TimeTapClient, session_signature
from sync.contract import AuthExpired, NotFound, RateLimited, Refused, WrongEtag
from sync.contract.items import Window
from tests.adapters.timetap.fakes.timetap import TimeTapFake

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
WINDOW = Window(START - timedelta(days=30), START + timedelta(days=180))


@pytest.fixture
async def fake() -> AsyncIterator[TimeTapFake]:
    server = await TimeTapFake().start()
    server.add_staff(71, "Dr Lee")
    try:
        yield server
    finally:
        await server.close()


def source_for(fake: TimeTapFake, private: str | None = None, attempts: int = 2,
               clock: object = None) -> TimeTapBookings:
    extra = {"clock": clock} if clock is not None else {}
    return TimeTapBookings(TimeTapClient(fake.url, fake.api_key, private or fake.private_key,
                                         policy=RetryPolicy(attempts=attempts, backoff=0.0, max_wait=0.0),
                                         **extra))  # type: ignore[arg-type]


def test_the_session_signature_is_md5_of_key_private_key_and_time() -> None:
    assert session_signature("k", "p", 1700000000) == "66fdac5a390836784b5eb694a107c755"


async def test_a_signed_session_is_made_once_and_again_when_refused(fake: TimeTapFake) -> None:
    source = source_for(fake)
    try:
        assert [(c.remote_id, c.name) for c in await source.staff()] == [("71", "Dr Lee")]
        await source.changes(None, WINDOW)
        assert fake.calls("/sessionToken") == 1 and "private" not in " ".join(p for _, p in fake.requests)
        fake.expire_sessions()
        await source.changes(None, WINDOW)
        assert fake.calls("/sessionToken") == 2
    finally:
        await source.aclose()
    for wrong in (source_for(fake, private="guess"), source_for(fake, clock=lambda: 1000.0)):  # key, stale time
        try:
            with pytest.raises(AuthExpired):
                await wrong.staff()
        finally:
            await wrong.aclose()


async def test_a_window_is_read_in_93_day_spans_and_pages(fake: TimeTapFake) -> None:
    source = source_for(fake)
    try:
        await source.staff()
        spans = -(-(WINDOW.end - WINDOW.start).days // SPAN_DAYS)
        before = fake.calls("/appointmentList/")
        assert (await source.changes(None, WINDOW, staff="71")).items == []
        assert fake.calls("/appointmentList/") - before == spans  # quiet: one request per span
        for n in range(PAGE_SIZE + 5):
            fake.book(71, START + timedelta(hours=n))
        before = fake.calls("/appointmentList/")
        listed = await source.changes(None, WINDOW, staff="71")
        assert len(listed.items) == PAGE_SIZE + 5 and fake.calls("/appointmentList/") - before == spans + 1
        event = listed.items[0].event
        assert (event.start, event.client_name, event.service, event.staff_ref) == (START, "Jane Roe",
                                                                                     "Chiropractic", "71")
    finally:
        await source.aclose()


async def test_cancel_reads_first_moves_are_refused_and_errors_are_mapped(fake: TimeTapFake) -> None:
    source = source_for(fake, attempts=1)
    try:
        appt = fake.book(71, START)
        item = await source.fetch(str(appt["calendarId"]))
        with pytest.raises(Refused) as refused:
            await source.reschedule(item.remote_id, START, START + timedelta(hours=1), item.etag)
        assert "moved in TimeTap" in refused.value.user_message
        fake.appointments[appt["calendarId"]]["note"] = "changed in TimeTap"
        with pytest.raises(WrongEtag):
            await source.cancel(item.remote_id, "stale", item.etag)
        fresh = await source.fetch(item.remote_id)
        assert (await source.cancel(item.remote_id, "ill", fresh.etag)).event.status == "cancelled"
        puts = sum(1 for m, _ in fake.requests if m == "PUT")
        await source.cancel(item.remote_id, "again", fresh.etag)
        assert sum(1 for m, _ in fake.requests if m == "PUT") == puts == 1
        with pytest.raises(NotFound):
            await source.fetch("999")
        fake.throttle = 1
        with pytest.raises(RateLimited):
            await source.staff()
    finally:
        await source.aclose()
