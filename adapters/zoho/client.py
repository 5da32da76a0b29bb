"""The Zoho Calendar HTTP client: Zoho's error body on the shared tree, and its temporary lock after a 429.

Zoho answers a client over its API limits with 429 and then locks the account for a while (Zoho's
api-limits page); calls during the lock only extend it. So after a 429 (past the transport's own
retries) this client raises RateLimited and makes no request for that account until the lock is
over: Retry-After when Zoho sends it, else CLINICBOT_ZOHO_LOCK_SECONDS. The lock is shared by every
client of one account (one per calendar), like the account's quota.

Error bodies are {"error": [{"code", "message"}]} or {"error": {...}} [I]; a stale etag on an update
or delete is recognised by HTTP 412/409 or a code naming the etag [I].
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

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
    WrongEtag,
)

__all__ = ["PROVIDER", "AccountLock", "ZohoClient", "map_zoho_error"]

PROVIDER = "zoho"


def _error_code(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, list):
        error = error[0] if error else None
    if isinstance(error, dict):
        return str(error.get("code") or ""), str(error.get("message") or "")[:300]
    return (str(error), "") if isinstance(error, str) else ("", "")


def map_zoho_error(response: httpx.Response, lock_seconds: float) -> ProviderError:
    """Zoho's answer onto the shared error tree."""
    status = response.status_code
    code, message = _error_code(response)
    what = f"zoho: HTTP {status} {code or 'error'} on {response.request.method} {response.request.url.path}"
    if message:
        what += f": {message}"
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimited(what, retry_after=wait if wait is not None else lock_seconds, provider=PROVIDER)
    if status == 401:
        return AuthExpired(what, provider=PROVIDER)
    if "duplicate" in code.lower():
        return AlreadyExists(what, provider=PROVIDER)
    if status in (409, 412) or "etag" in code.lower():
        return WrongEtag(what, provider=PROVIDER)
    if status == 404 or "not_found" in code.lower() or "notfound" in code.lower():
        return NotFound(what, provider=PROVIDER)
    if status >= 500:
        return Unavailable(what, provider=PROVIDER)
    if status == 403:
        return Refused(what, provider=PROVIDER)
    return BadPayload(what, provider=PROVIDER)


class AccountLock:
    """When an account may call Zoho again (monotonic seconds), shared by every client of the account."""

    _until: ClassVar[dict[str, float]] = {}

    def __init__(self, key: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.key, self._clock = key, clock

    def remaining(self) -> float:
        return max(0.0, self._until.get(self.key, 0.0) - self._clock())

    def hold(self, seconds: float) -> None:
        self._until[self.key] = max(self._until.get(self.key, 0.0), self._clock() + seconds)


class ZohoClient:
    """JSON calls to one Zoho account's calendars (`/api/v1/...` on calendar.zoho.<dc>)."""

    def __init__(self, base_url: str, auth: httpx.Auth, *, lock: AccountLock, lock_seconds: float = 300.0,
                 transport: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None) -> None:
        # No waiting out a 429 inside the transport: a retry during Zoho's lock only extends the lock.
        self._http = make_client(base_url.rstrip("/") + "/api/v1/", transport=transport, auth=auth,
                                 policy=policy or RetryPolicy(max_wait=0.0), max_connections=10)
        self.lock = lock
        self._lock_seconds = lock_seconds
        self.calls = 0

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      headers: dict[str, str] | None = None) -> Any:
        """One call; the JSON body, or a ProviderError. None made while the account is locked."""
        waiting = self.lock.remaining()
        if waiting > 0:
            raise RateLimited(f"zoho: the account is locked after a 429 for {waiting:.0f} s more",
                              retry_after=waiting, provider=PROVIDER)
        self.calls += 1
        try:
            response = await send(self._http, PROVIDER, method, path.lstrip("/"), params=params, headers=headers,
                                  errors=lambda r: map_zoho_error(r, self._lock_seconds))
        except RateLimited as exc:
            self.lock.hold(exc.retry_after or self._lock_seconds)
            raise
        return json_body(response, PROVIDER, empty={})

    async def aclose(self) -> None:
        await self._http.aclose()
