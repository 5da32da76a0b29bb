"""The Acuity HTTP client: Basic auth (user id + API key), Acuity's error body, and its 10 requests/s.

Acuity answers errors as {"status_code", "message", "error"}; its documented refusals of a
reschedule (`reschedule_too_close`, `not_available`...) become Refused whose message is Acuity's
own words, so the person in chat reads why. Requests are spaced to stay under Acuity's per-IP
limit (one shared pacer per API host), and a 429 beyond the transport's retries is RateLimited.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, json_body, make_client, parse_retry_after, send
from sync.contract import AuthExpired, NotFound, ProviderError, RateLimited, Refused, Unavailable

__all__ = ["PROVIDER", "REFUSALS", "AcuityClient", "Pacer", "map_acuity_error"]

PROVIDER = "acuity"
#: Acuity's documented reasons for refusing a reschedule, in words for chat.
REFUSALS = {
    "reschedule_not_allowed": "Acuity does not allow rescheduling this appointment",
    "reschedule_too_close": "it is too close to the appointment to reschedule it in Acuity",
    "reschedule_series": "Acuity cannot reschedule one visit of a series",
    "reschedule_canceled": "the appointment is cancelled in Acuity",
    "invalid_calendar": "that Acuity calendar does not exist",
    "required_datetime": "Acuity needs the new time",
    "invalid_timezone": "Acuity did not accept the time zone",
    "invalid_datetime": "Acuity did not accept the new time",
    "not_available_min_hours_in_advance": "Acuity needs more notice before that time",
    "not_available_max_days_in_advance": "that time is too far ahead for Acuity",
    "not_available": "that time is not available in Acuity",
}


class Pacer:
    """At most `rate` request starts per second, shared by every client of one API host.

    Reading and moving the next free slot has no await in between, so on one event loop it needs no lock.
    """

    def __init__(self, rate: float) -> None:
        self.gap = 1.0 / rate
        self._next = 0.0

    @classmethod
    def for_host(cls, host: str, rate: float) -> Pacer:
        found = _PACERS.get(host)
        if found is None or found.gap != 1.0 / rate:
            found = _PACERS[host] = Pacer(rate)
        return found

    def reserve(self) -> float:
        """Take the next free slot; the seconds to wait for it."""
        now = time.monotonic()
        delay = self._next - now
        self._next = max(now, self._next) + self.gap
        return max(0.0, delay)

    async def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)


_PACERS: dict[str, Pacer] = {}


def map_acuity_error(response: httpx.Response) -> ProviderError:
    """Acuity's error body onto the shared error tree."""
    status = response.status_code
    try:
        body = response.json()
        code, message = str(body.get("error") or ""), str(body.get("message") or "")[:300]
    except (ValueError, AttributeError):
        code, message = "", ""
    what = f"acuity: HTTP {status} {code or 'error'} on {response.request.method} {response.request.url.path}"
    if message:
        what += f": {message}"
    if status == 401:
        return AuthExpired(what, provider=PROVIDER)
    if status == 429:
        return RateLimited(what, retry_after=parse_retry_after(response.headers.get("Retry-After")) or 1.0,
                           provider=PROVIDER)
    if status == 404:
        return NotFound(what, provider=PROVIDER)
    if status >= 500:
        return Unavailable(what, provider=PROVIDER)
    words = REFUSALS.get(code) or message or "Acuity refused the change"
    # The message itself is the words: the outbox keeps it on the failed change that status shows.
    refused = Refused(f"Acuity refused: {words} ({code or status}).", provider=PROVIDER)
    refused.user_message = f"Acuity refused: {words}."
    return refused


class AcuityClient:
    """JSON calls to one Acuity account."""

    def __init__(self, base_url: str, auth: httpx.Auth, *, rate: float = 9.0,
                 transport: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None) -> None:
        self._http = make_client(base_url.rstrip("/") + "/api/v1/", transport=transport, auth=auth,
                                 policy=policy or RetryPolicy(), max_connections=20)
        self._pacer = Pacer.for_host(base_url, rate)
        self.calls = 0

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      json: dict[str, Any] | None = None) -> Any:
        """One call (paced); the JSON body, or a ProviderError."""
        await self._pacer.wait()
        self.calls += 1
        response = await send(
            self._http, PROVIDER, method, path.lstrip("/"), errors=map_acuity_error, params=params, json=json
        )
        return json_body(response, PROVIDER)

    async def aclose(self) -> None:
        await self._http.aclose()
