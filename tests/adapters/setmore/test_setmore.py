"""Setmore against its loopback fake: the refresh-token exchange and re-exchange, paged window re-reads
(a quiet poll costs one request per page), read-first writes, refusals in Setmore's words, throttling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.kit.http import RetryPolicy
from adapters.setmore.bookings import SetmoreBookings
from adapters.setmore.client import SetmoreClient
from sync.contract import AuthExpired, NotFound, RateLimited, Refused, WrongEtag
from sync.contract.items import Window
from tests.adapters.setmore.fakes.setmore import SetmoreFake

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
WINDOW = Window(START - timedelta(days=30), START + timedelta(days=180))


@pytest.fixture
async def fake() -> AsyncIterator[SetmoreFake]:
    server = await SetmoreFake().start()
    server.add_staff("st-lee", "Dr", "Lee")
    try:
        yield server
    finally:
        await server.close()


def source_for(fake: SetmoreFake, refresh: str | None = None, attempts: int = 2) -> SetmoreBookings:
    return SetmoreBookings(SetmoreClient(fake.url, refresh or fake.refresh_token,
                                         policy=RetryPolicy(attempts=attempts, backoff=0.0, max_wait=0.0)))


async def test_tokens_are_exchanged_once_and_again_after_a_401(fake: SetmoreFake) -> None:
    source = source_for(fake)
    try:
        assert [(c.remote_id, c.name) for c in await source.staff()] == [("st-lee", "Dr Lee")]
        await source.changes(None, WINDOW)
        assert fake.calls("/o/oauth2/token") == 1
        fake.expire_access_tokens()
        await source.changes(None, WINDOW)
        assert fake.calls("/o/oauth2/token") == 2
    finally:
        await source.aclose()
    revoked = source_for(fake, refresh="r1-old")
    try:
        with pytest.raises(AuthExpired):
            await revoked.staff()
    finally:
        await revoked.aclose()


async def test_a_window_re_read_costs_one_request_per_page(fake: SetmoreFake) -> None:
    source = source_for(fake)
    try:
        await source.staff()
        before = fake.calls("/bookingapi/appointments?")
        assert (await source.changes(None, WINDOW, staff="st-lee")).items == []
        assert fake.calls("/bookingapi/appointments?") - before == 1
        for n in range(45):
            fake.book("st-lee", START + timedelta(hours=n))
        before = fake.calls("/bookingapi/appointments?")
        listed = await source.changes(None, WINDOW, staff="st-lee")
        assert len(listed.items) == 45 and listed.full
        assert fake.calls("/bookingapi/appointments?") - before == 3  # 20 a page
        assert fake.calls("/bookingapi/appointments/") == 0
        event = listed.items[0].event
        assert (event.client_name, event.service, event.staff_ref, event.start) == ("Jane Roe", "Physio", "st-lee",
                                                                                     START)
    finally:
        await source.aclose()


async def test_writes_read_first_and_refusals_keep_setmores_words(fake: SetmoreFake) -> None:
    source = source_for(fake, attempts=1)
    try:
        appt = fake.book("st-lee", START)
        item = await source.fetch(appt["key"])
        later = START + timedelta(hours=2)
        moved = await source.reschedule(item.remote_id, later, later + timedelta(minutes=30), item.etag)
        assert moved.event.start == later and moved.etag != item.etag
        puts = fake.calls("/bookingapi/appointments/", "PUT")
        await source.reschedule(item.remote_id, later, later + timedelta(minutes=30), item.etag)
        assert fake.calls("/bookingapi/appointments/", "PUT") == puts  # a retry sends nothing
        fake.refuse[appt["key"]] = "Staff is not available at the selected time"
        with pytest.raises(Refused) as refused:
            await source.reschedule(item.remote_id, START, START + timedelta(minutes=30), moved.etag)
        assert refused.value.user_message == "Setmore refused: Staff is not available at the selected time."
        with pytest.raises(WrongEtag):
            await source.cancel(item.remote_id, "stale", item.etag)
        cancelled = await source.cancel(item.remote_id, "client ill", moved.etag)
        assert cancelled.event.status == "cancelled" and appt["key"] not in fake.appointments
        assert (await source.cancel(item.remote_id, "again", moved.etag)).event.status == "cancelled"
        assert fake.calls("/bookingapi/appointments/", "DELETE") == 1
        with pytest.raises(NotFound):
            await source.fetch(appt["key"])
        fake.throttle = 1
        with pytest.raises(RateLimited) as limited:
            await source.staff()
        assert limited.value.retry_after == 2.0
    finally:
        await source.aclose()
