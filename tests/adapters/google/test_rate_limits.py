"""Backoff on Google's throttling: 403 rateLimitExceeded / userRateLimitExceeded and 429."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.google.provider import GoogleCalendar
from sync.contract import RateLimited, Refused
from sync.contract.items import Window
from tests.adapters.google.conftest import Sleeps
from tests.adapters.google.fakes.google import GoogleFake

WINDOW = Window(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC))


async def test_403_rate_limit_backs_off_exponentially_with_jitter(
    fake: GoogleFake, calendar: GoogleCalendar, sleeps: Sleeps
) -> None:
    fake.throttle(3, status=403, reason="rateLimitExceeded")
    changes = await calendar.changes(None, WINDOW)
    assert changes.full
    base = calendar.api.policy.backoff
    assert len(sleeps.waits) == 3
    for attempt, wait in enumerate(sleeps.waits, start=1):
        nominal = base * 2 ** (attempt - 1)
        assert 0.5 * nominal <= wait <= 1.5 * nominal


async def test_backoff_is_bounded_then_rate_limited(fake: GoogleFake, calendar: GoogleCalendar, sleeps: Sleeps) -> None:
    fake.throttle(100, status=403, reason="userRateLimitExceeded")
    with pytest.raises(RateLimited):
        await calendar.changes(None, WINDOW)
    attempts = calendar.api.policy.attempts
    assert len(sleeps.waits) == attempts - 1
    assert fake.throttles[0].count == 100 - attempts


async def test_a_403_that_is_not_throttling_is_not_retried(
    fake: GoogleFake, calendar: GoogleCalendar, sleeps: Sleeps
) -> None:
    fake.throttle(1, status=403, reason="forbiddenForNonOrganizer")
    with pytest.raises(Refused):
        await calendar.changes(None, WINDOW)
    assert sleeps.waits == []


async def test_429_is_retried_by_the_shared_transport(fake: GoogleFake, calendar: GoogleCalendar) -> None:
    fake.throttle(2, status=429, retry_after="0")
    changes = await calendar.changes(None, WINDOW)
    assert changes.full and fake.throttles[0].count == 0


async def test_a_long_retry_after_goes_back_to_the_outbox(fake: GoogleFake, calendar: GoogleCalendar) -> None:
    fake.throttle(1, status=429, retry_after="3600")
    with pytest.raises(RateLimited) as caught:
        await calendar.changes(None, WINDOW)
    assert caught.value.retry_after == 3600
