"""The Calendly HTTP client: bearer token, Calendly's error body, `page_token` pagination, 429 resets.

Calendly answers errors as {"title", "message"}; 429 carries `X-RateLimit-Reset` (seconds until
the limit resets), which becomes RateLimited.retry_after so the outbox waits exactly that long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, json_body, make_client, parse_retry_after, send
from sync.contract import AuthExpired, BadPayload, NotFound, ProviderError, RateLimited, Refused, Unavailable

__all__ = ["PROVIDER", "CalendlyClient", "map_calendly_error", "rate_limit_wait"]

PROVIDER = "calendly"


def rate_limit_wait(response: httpx.Response) -> float | None:
    """How long Calendly asks us to wait: Retry-After, else X-RateLimit-Reset (seconds until the limit resets)."""
    return parse_retry_after(response.headers.get("Retry-After") or response.headers.get("X-RateLimit-Reset"))


def map_calendly_error(response: httpx.Response) -> ProviderError:
    status = response.status_code
    try:
        body = response.json()
        title, message = str(body.get("title") or ""), str(body.get("message") or "")[:300]
    except (ValueError, AttributeError):
        title, message = "", ""
    what = f"calendly: HTTP {status} {title or 'error'} on {response.request.method} {response.request.url.path}"
    if message:
        what += f": {message}"
    if status == 401:
        return AuthExpired(what, provider=PROVIDER)
    if status == 429:
        return RateLimited(what, retry_after=rate_limit_wait(response), provider=PROVIDER)
    if status in (404, 410):
        return NotFound(what, provider=PROVIDER)
    if status >= 500:
        return Unavailable(what, provider=PROVIDER)
    refused = Refused(what, provider=PROVIDER)
    refused.user_message = f"Calendly refused: {message or title or 'bad request'}"
    return refused


class CalendlyClient:
    """JSON calls to Calendly with one account's token."""

    def __init__(self, base_url: str, token: str | httpx.Auth, *, transport: httpx.AsyncBaseTransport | None = None,
                 policy: RetryPolicy | None = None) -> None:
        """`token` is a personal access token, or an auth that hands out (and refreshes) OAuth tokens."""
        if not token:
            raise AuthExpired("calendly: the connection has no token", provider=PROVIDER)
        auth = token if isinstance(token, httpx.Auth) else None
        headers = {} if auth is not None else {"Authorization": f"Bearer {token}"}
        self._http = make_client(base_url, transport=transport, policy=policy or RetryPolicy(), headers=headers,
                                 auth=auth, retry_after=rate_limit_wait)
        self.calls = 0

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      json: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls += 1
        response = await send(self._http, PROVIDER, method, path, errors=map_calendly_error, params=params, json=json)
        return json_body(response, PROVIDER, empty={}, want_object=True)  # type: ignore[no-any-return]

    async def collection(self, path: str, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Every item of a listing, following `pagination.next_page_token`."""
        query = dict(params)
        seen: set[str] = set()
        while True:
            body = await self.request("GET", path, params=query)
            for item in body.get("collection") or []:
                if isinstance(item, dict):
                    yield item
            token = (body.get("pagination") or {}).get("next_page_token")
            if not token:
                return
            if token in seen:
                raise BadPayload("calendly: the listing repeats a page token", provider=PROVIDER)
            seen.add(str(token))
            query["page_token"] = str(token)

    async def aclose(self) -> None:
        await self._http.aclose()
