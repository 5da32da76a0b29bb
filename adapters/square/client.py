"""The Square HTTP client: bearer auth, the Square-Version header, Square's error body, pagination.

Square answers errors as {"errors": [{"category", "code", "detail", "field"}]}; the first error's
code decides how it maps onto sync.contract (an expired token is AuthExpired, a version mismatch
WrongEtag, a reused idempotency key AlreadyExists), and its detail is kept for the person in chat.
429 and 5xx are retried by the shared transport honouring Retry-After; beyond that, RateLimited.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, json_body, make_client, parse_retry_after, send
from adapters.square.settings import SQUARE_VERSION
from sync.contract import (
    AlreadyExists,
    AuthExpired,
    BadPayload,
    NotFound,
    ProviderError,
    RateLimited,
    Refused,
    Unavailable,
    WrongEtag,
)

__all__ = ["PROVIDER", "SquareClient", "map_square_error"]

PROVIDER = "square"
_AUTH_CODES = frozenset({"UNAUTHORIZED", "ACCESS_TOKEN_EXPIRED", "ACCESS_TOKEN_REVOKED"})
#: Codes Square uses for a stale `version` (the status is not documented for bookings: 409 or 400).
_VERSION_CODES = frozenset({"CONFLICT", "VERSION_MISMATCH"})


def _first_error(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
        first = body["errors"][0]
        return str(first.get("code") or ""), str(first.get("detail") or "")[:300]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "", ""


def map_square_error(response: httpx.Response) -> ProviderError:
    """Square's error body onto the shared error tree; the message names Square's code and detail."""
    status = response.status_code
    code, detail = _first_error(response)
    what = f"square: HTTP {status} {code or 'error'} on {response.request.method} {response.request.url.path}"
    if detail:
        what += f": {detail}"
    if status == 401 or code in _AUTH_CODES:
        return AuthExpired(what, provider=PROVIDER)
    if status == 429 or code == "RATE_LIMITED":
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimited(what, retry_after=wait, provider=PROVIDER)
    if code == "IDEMPOTENCY_KEY_REUSED":
        return AlreadyExists(what, provider=PROVIDER)
    if code in _VERSION_CODES or status == 409:
        return WrongEtag(what, provider=PROVIDER)
    if status == 404 or code == "NOT_FOUND":
        return NotFound(what, provider=PROVIDER)
    if status == 403 or code in ("FORBIDDEN", "INSUFFICIENT_SCOPES"):
        return Refused(what, provider=PROVIDER)
    if status >= 500:
        return Unavailable(what, provider=PROVIDER)
    refused = Refused(what, provider=PROVIDER)
    refused.user_message = f"Square refused the change: {detail or code or 'bad request'}"
    return refused


class _Bearer(httpx.Auth):
    """Bearer auth whose token is asked for per request (so a due refresh happens on first use)."""

    def __init__(self, token: Callable[[], Awaitable[str]]) -> None:
        self._token = token

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._token()
        if not token:
            raise AuthExpired("square: the connection has no access token", provider=PROVIDER)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


class SquareClient:
    """JSON calls to one Square account with errors mapped onto sync.contract."""

    def __init__(self, base_url: str, token: Callable[[], Awaitable[str]], *,
                 transport: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None) -> None:
        self._http = make_client(base_url, transport=transport, policy=policy or RetryPolicy(),
                                 headers={"Square-Version": SQUARE_VERSION}, auth=_Bearer(token))
        #: API calls made (the benchmark's reads per booking).
        self.calls = 0

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      json: dict[str, Any] | None = None) -> dict[str, Any]:
        """One call; the JSON body, or a ProviderError."""
        self.calls += 1
        response = await send(self._http, PROVIDER, method, path, errors=map_square_error, params=params, json=json)
        return json_body(response, PROVIDER, empty={}, want_object=True)  # type: ignore[no-any-return]

    async def pages(self, path: str, key: str, params: dict[str, str]) -> AsyncIterator[list[dict[str, Any]]]:
        """Each page's `key` list, following `cursor` until Square gives none (or an empty one)."""
        query = dict(params)
        seen: set[str] = set()
        while True:
            body = await self.request("GET", path, params=query)
            items = body.get(key) or []
            if not isinstance(items, list):
                raise BadPayload(f"square: {key} is not a list", provider=PROVIDER)
            yield [i for i in items if isinstance(i, dict)]
            cursor = body.get("cursor")
            if not cursor:
                return
            if cursor in seen:
                raise BadPayload("square: the listing repeats a cursor", provider=PROVIDER)
            seen.add(str(cursor))
            query["cursor"] = str(cursor)

    async def aclose(self) -> None:
        await self._http.aclose()
