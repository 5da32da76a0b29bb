"""A platform's own rate-limit header is honoured by the shared retries: Calendly's X-RateLimit-Reset."""

from __future__ import annotations

import httpx

from adapters.calendly.client import rate_limit_wait
from adapters.kit.http import RetryPolicy, RetryTransport


async def test_x_ratelimit_reset_is_the_wait_before_the_retry() -> None:
    answers = iter([httpx.Response(429, headers={"X-RateLimit-Reset": "7"}, json={"title": "Too Many Requests"}),
                    httpx.Response(200, json={"resource": {}})])
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    transport = RetryTransport(httpx.MockTransport(lambda request: next(answers)),
                               RetryPolicy(attempts=3, backoff=0.01, max_wait=20.0), sleep=sleep,
                               retry_after=rate_limit_wait)
    async with httpx.AsyncClient(transport=transport, base_url="http://calendly.test") as http:
        assert (await http.get("/users/me")).status_code == 200
    assert slept == [7.0]


async def test_a_reset_beyond_the_longest_wait_goes_back_to_the_caller() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    transport = RetryTransport(
        httpx.MockTransport(lambda request: httpx.Response(429, headers={"X-RateLimit-Reset": "60"})),
        RetryPolicy(attempts=3, max_wait=20.0), sleep=sleep, retry_after=rate_limit_wait)
    async with httpx.AsyncClient(transport=transport, base_url="http://calendly.test") as http:
        assert (await http.get("/users/me")).status_code == 429  # the client raises RateLimited(60)
    assert slept == []
