"""The HubSpot HTTP client: bearer token, HubSpot's error body, `paging.next.after` paging, 429 waits.

HubSpot answers errors as {"status": "error", "message", "correlationId", "category"} (429 adds
`policyName`: TEN_SECONDLY_ROLLING, SECONDLY or DAILY). Its 429 carries no Retry-After as a rule;
the wait comes from the rate-limit headers: `X-HubSpot-RateLimit-Interval-Milliseconds` for the
rolling window, and the rest of the day when `X-HubSpot-RateLimit-Daily-Remaining` is 0 (the daily
limit resets at midnight in the account's time zone, which we do not know: an hour, then again).
The correlationId is kept in the message: HubSpot support asks for it. Successes carry the same
headers: when `X-HubSpot-RateLimit-Remaining` reaches 0 the client waits out the interval before
its next request, and when the daily remaining reaches 0 it stops asking (RateLimited) until the
caller's wait is over; so a steady run stays inside the limits instead of drawing 429s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, json_body, make_client, parse_retry_after, send
from sync.contract import (
    AlreadyExists,
    AuthExpired,
    BadPayload,
    NotFound,
    ProviderError,
    RateLimited,
    Refused,
    Unavailable,
)

__all__ = ["PROVIDER", "HubSpotClient", "map_hubspot_error", "rate_limit_wait"]

PROVIDER = "hubspot"
#: How long to wait when the daily limit is spent (HubSpot resets it at the account's midnight).
DAILY_WAIT = 3600.0
#: Pages followed at most in one listing (a loop guard: 100 items a page).
MAX_PAGES = 200


def rate_limit_wait(response: httpx.Response) -> float | None:
    """How long HubSpot asks us to wait: Retry-After, the daily limit, or the rolling window's interval."""
    given = parse_retry_after(response.headers.get("Retry-After"))
    if given is not None:
        return given
    if response.headers.get("X-HubSpot-RateLimit-Daily-Remaining", "").strip() == "0":
        return DAILY_WAIT
    interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "").strip()
    if interval.isdigit():
        return int(interval) / 1000.0
    return None


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def map_hubspot_error(response: httpx.Response) -> ProviderError:
    status = response.status_code
    body = _error_body(response)
    category, message = str(body.get("category") or ""), str(body.get("message") or "")[:300]
    what = f"hubspot: HTTP {status} {category or 'error'} on {response.request.method} {response.request.url.path}"
    if message:
        what += f": {message}"
    if body.get("correlationId"):
        what += f" (correlationId {body['correlationId']})"
    if status == 401:
        return AuthExpired(what, provider=PROVIDER)
    if status == 429:
        if body.get("policyName") == "DAILY" and response.headers.get("Retry-After") is None:
            return RateLimited(what, retry_after=DAILY_WAIT, provider=PROVIDER)
        return RateLimited(what, retry_after=rate_limit_wait(response), provider=PROVIDER)
    if status == 404:
        return NotFound(what, provider=PROVIDER)
    if status == 409:
        found = AlreadyExists(what, provider=PROVIDER)
        found.user_message = message or "HubSpot already has it"
        return found
    if status >= 500:
        return Unavailable(what, provider=PROVIDER)
    refused = Refused(what, provider=PROVIDER)
    refused.user_message = f"HubSpot refused: {message or category or 'bad request'}"
    return refused


class HubSpotClient:
    """JSON calls to one HubSpot account with its token."""

    def __init__(self, base_url: str, token: str | httpx.Auth, *, transport: httpx.AsyncBaseTransport | None = None,
                 policy: RetryPolicy | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """`token` is a private-app token, or an auth that hands out (and refreshes) OAuth tokens."""
        if not token:
            raise AuthExpired("hubspot: the connection has no token", provider=PROVIDER)
        auth = token if isinstance(token, httpx.Auth) else None
        headers = {} if auth is not None else {"Authorization": f"Bearer {token}"}
        self._http = make_client(base_url, transport=transport, policy=policy or RetryPolicy(), headers=headers,
                                 auth=auth, retry_after=rate_limit_wait)
        self.calls = 0
        #: Seconds slept to stay inside HubSpot's rolling window (the benchmark, tests).
        self.paced = 0.0
        self._sleep = sleep
        self._quiet_until = 0.0
        self._daily_spent = False

    def _note_limits(self, response: httpx.Response) -> None:
        """Read the rate-limit headers of a success: when the window's budget is spent, the next request
        waits for the window to roll over instead of drawing a 429."""
        headers = response.headers
        if headers.get("X-HubSpot-RateLimit-Daily-Remaining", "").strip() == "0":
            self._daily_spent = True
        remaining = headers.get("X-HubSpot-RateLimit-Remaining", "").strip()
        interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "").strip()
        if remaining == "0" and interval.isdigit():
            self._quiet_until = time.monotonic() + int(interval) / 1000.0

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      json: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._daily_spent:
            raise RateLimited("hubspot: the account's daily API limit is spent", retry_after=DAILY_WAIT,
                              provider=PROVIDER)
        wait = self._quiet_until - time.monotonic()
        if wait > 0:
            self.paced += wait
            await self._sleep(wait)
        self.calls += 1
        response = await send(self._http, PROVIDER, method, path, errors=map_hubspot_error, params=params, json=json)
        self._note_limits(response)
        return json_body(response, PROVIDER, empty={}, want_object=True)  # type: ignore[no-any-return]

    async def search_pages(self, object_type: str, body: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """A CRM search page by page, following `paging.next.after`."""
        query = dict(body)
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            answer = await self.request("POST", f"/crm/v3/objects/{object_type}/search", json=query)
            yield [item for item in answer.get("results") or [] if isinstance(item, dict)]
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return
            if str(after) in seen:
                raise BadPayload("hubspot: the search repeats a page", provider=PROVIDER)
            seen.add(str(after))
            query["after"] = str(after)
        raise BadPayload(f"hubspot: a search longer than {MAX_PAGES} pages", provider=PROVIDER)

    async def search(self, object_type: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every result of a CRM search."""
        async for page in self.search_pages(object_type, body):
            for item in page:
                yield item

    async def listing(self, path: str, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Every item of a GET listing (owners), following `paging.next.after`."""
        query = dict(params)
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            answer = await self.request("GET", path, params=query)
            for item in answer.get("results") or []:
                if isinstance(item, dict):
                    yield item
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after or str(after) in seen:
                return
            seen.add(str(after))
            query["after"] = str(after)

    async def aclose(self) -> None:
        await self._http.aclose()
