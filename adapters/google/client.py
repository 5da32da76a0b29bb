"""The Google Calendar HTTP client: the shared httpx factory, bearer auth, JSON, and backoff.

Throttling comes two ways. 429 (and 5xx) are retried by the shared transport in adapters.kit.http,
honouring Retry-After. Google also throttles with 403 rateLimitExceeded/userRateLimitExceeded,
which no generic client can tell from a permission error; this client backs those off itself,
exponentially with jitter, up to the same bounded number of attempts, then raises RateLimited.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from adapters.google.errors import RATE_LIMIT_REASONS, google_reason, map_google_error
from adapters.kit.http import RetryPolicy, make_client, parse_retry_after
from sync.contract import BadPayload, Refused, Unavailable

__all__ = ["GoogleClient"]

log = logging.getLogger("clinicbot.google")
PROVIDER = "google"


class GoogleClient:
    """JSON requests against the Calendar API with errors mapped onto sync.contract."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._http = make_client(base_url, transport=transport, policy=self.policy, auth=auth)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based): doubling, jittered 50-150 %."""
        base = self.policy.backoff * (2 ** (attempt - 1))
        return float(min(self.policy.max_wait, base * (0.5 + random.random())))

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """Send one API call; returns the JSON body (None for 204) or raises a ProviderError."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(method, path, params=params, json=json, headers=headers)
            except httpx.TimeoutException as exc:
                raise Unavailable(f"google: timed out ({type(exc).__name__})", provider=PROVIDER) from exc
            except httpx.HTTPError as exc:
                raise Unavailable(f"google: {type(exc).__name__}", provider=PROVIDER) from exc
            if response.status_code < 400:
                return _json(response)
            if response.status_code == 403 and google_reason(response) in RATE_LIMIT_REASONS:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                wait = self.backoff(attempt) if wait is None else wait
                if attempt < self.policy.attempts and wait <= self.policy.max_wait:
                    log.info("google throttled", extra={"attempt": attempt, "wait": round(wait, 3)})
                    await self._sleep(wait)
                    continue
            raise map_google_error(response)

    async def download(self, path: str, *, params: dict[str, str], max_bytes: int) -> tuple[bytes, str]:
        """A file's bytes and content type, read as a stream and given up past `max_bytes` (Refused)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._http.stream("GET", path, params=params) as response:
                    if response.status_code < 400:
                        return await _capped(response, max_bytes), response.headers.get("Content-Type", "")
                    await response.aread()  # an error body is small JSON
            except httpx.TimeoutException as exc:
                raise Unavailable(f"google: timed out ({type(exc).__name__})", provider=PROVIDER) from exc
            except httpx.HTTPError as exc:
                raise Unavailable(f"google: {type(exc).__name__}", provider=PROVIDER) from exc
            if response.status_code == 403 and google_reason(response) in RATE_LIMIT_REASONS:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                wait = self.backoff(attempt) if wait is None else wait
                if attempt < self.policy.attempts and wait <= self.policy.max_wait:
                    await self._sleep(wait)
                    continue
            raise map_google_error(response)

    async def aclose(self) -> None:
        await self._http.aclose()


async def _capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise Refused(f"google: the file is larger than {max_bytes} bytes", provider=PROVIDER)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise Refused(f"google: the file is larger than {max_bytes} bytes", provider=PROVIDER)
    return bytes(body)


def _json(response: httpx.Response) -> dict[str, Any] | None:
    if response.status_code == 204 or not response.content:
        return None
    try:
        body = response.json()
    except ValueError:
        raise BadPayload("google: response is not JSON", provider=PROVIDER) from None
    if not isinstance(body, dict):
        raise BadPayload("google: response is not a JSON object", provider=PROVIDER)
    return body
