"""The one shared httpx client factory: timeouts, bounded retries that honour Retry-After, and a
per-provider base URL (for national clouds and for the loopback fakes in tests).

Retries happen in a transport wrapper, so every adapter gets the same policy whatever request it
sends. How long a throttled answer asks us to wait is read from Retry-After, or by the platform's
own hook (`retry_after`: Calendly's X-RateLimit-Reset). A throttle that asks us to wait longer
than `max_wait` is not slept through: the response goes back to the adapter, which raises
RateLimited, and the outbox reschedules the operation.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from sync.contract import (
    AlreadyExists,
    AuthExpired,
    BadPayload,
    CursorExpired,
    NotFound,
    ProviderError,
    RateLimited,
    Refused,
    Unavailable,
    WrongEtag,
)

__all__ = [
    "RetryPolicy",
    "RetryTransport",
    "default_ssl_context",
    "make_client",
    "map_response_error",
    "parse_retry_after",
    "refusal_errors",
]

log = logging.getLogger("clinicbot.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PROPFIND", "REPORT"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    #: First backoff in seconds; doubles each attempt, with jitter.
    backoff: float = 0.25
    #: Longest single wait we sleep through ourselves; longer Retry-After goes back to the caller.
    max_wait: float = 20.0


_SECONDS = re.compile(r"[0-9]{1,10}(\.[0-9]{1,6})?", re.ASCII)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    # delta-seconds are ASCII digits: float() also takes "nan", "inf", "1_0" and other scripts' digits
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _retry_after_header(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


class RetryTransport(httpx.AsyncBaseTransport):
    """Retries throttled and failed requests with bounded, jittered backoff."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: RetryPolicy,
        sleep: Callable[[float], Any] = asyncio.sleep,
        retry_after: Callable[[httpx.Response], float | None] | None = None,
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._sleep = sleep
        self._retry_after = retry_after or _retry_after_header

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        policy = self._policy
        retry_any_method = bool(request.extensions.get("clinicbot_idempotent"))
        attempt = 0
        while True:
            attempt += 1
            can_retry_errors = request.method in IDEMPOTENT_METHODS or retry_any_method
            try:
                response = await self._inner.handle_async_request(request)
            except (httpx.TimeoutException, httpx.NetworkError):
                if attempt >= policy.attempts or not can_retry_errors:
                    raise
                await self._sleep(self._backoff(attempt))
                continue
            if response.status_code not in RETRY_STATUSES or attempt >= policy.attempts:
                return response
            # 429 and 503 mean "not processed": safe to resend whatever the method.
            if response.status_code in (502, 504) and not can_retry_errors:
                return response
            wait = self._retry_after(response)
            if wait is None:
                wait = self._backoff(attempt)
            if wait > policy.max_wait:
                return response
            await response.aread()
            await response.aclose()
            log.info("http retry", extra={"status": response.status_code, "wait": round(wait, 3)})
            await self._sleep(wait)

    def _backoff(self, attempt: int) -> float:
        base = self._policy.backoff * (2 ** (attempt - 1))
        return float(min(self._policy.max_wait, base * (0.5 + random.random())))

    async def aclose(self) -> None:
        await self._inner.aclose()


_SSL_CONTEXTS: dict[tuple[str, str], ssl.SSLContext] = {}
_SSL_LOCK = threading.Lock()


def default_ssl_context() -> ssl.SSLContext:
    """The one verifying TLS context every client shares, per SSL_CERT_FILE / SSL_CERT_DIR in force.

    Building a context reads and parses the whole CA bundle: 100-150 ms of CPU on a busy machine.
    Each provider opened (every sync, every outbox write) used to build its own, on the event loop,
    where it held up every webhook ack and chat answer meanwhile. The server builds this one in a
    thread at start; an SSLContext is safe to share between clients and connections. A change of
    those variables (a private CA set later) gets a context of its own.
    """
    trust = (os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", ""))
    context = _SSL_CONTEXTS.get(trust)
    if context is None:
        with _SSL_LOCK:
            context = _SSL_CONTEXTS.get(trust)
            if context is None:
                context = _SSL_CONTEXTS[trust] = httpx.create_ssl_context()
    return context


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    policy: RetryPolicy | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    auth: httpx.Auth | None = None,
    verify: Any = True,
    max_connections: int = 20,
    retry_after: Callable[[httpx.Response], float | None] | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient for one provider. `transport` lets tests inject a mock; the base URL is the
    provider's own or an override (national cloud, loopback fake); `retry_after` reads the platform's
    own rate-limit header when it is not Retry-After."""
    inner = transport or httpx.AsyncHTTPTransport(
        verify=default_ssl_context() if verify is True else verify,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"User-Agent": "clinicbot/0.1", **(headers or {})},
        timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        transport=RetryTransport(inner, policy or RetryPolicy(), retry_after=retry_after),
        auth=auth,
        follow_redirects=False,
    )


def map_response_error(response: httpx.Response, provider: str, *, creating: bool = False) -> ProviderError:
    """Map a failed HTTP response onto the shared error tree (call only for status >= 400)."""
    status = response.status_code
    what = f"{provider}: HTTP {status} on {response.request.method} {response.request.url.path}"
    if status == 401:
        return AuthExpired(what, provider=provider)
    if status == 403:
        return Refused(what, provider=provider)
    if status == 404:
        return NotFound(what, provider=provider)
    if status == 409:
        return AlreadyExists(what, provider=provider)
    if status == 410:
        return CursorExpired(what, provider=provider) if not creating else NotFound(what, provider=provider)
    if status == 412:
        return AlreadyExists(what, provider=provider) if creating else WrongEtag(what, provider=provider)
    if status == 429:
        return RateLimited(what, retry_after=parse_retry_after(response.headers.get("Retry-After")), provider=provider)
    if status >= 500:
        if status == 503 and response.headers.get("Retry-After"):
            return RateLimited(
                what, retry_after=parse_retry_after(response.headers.get("Retry-After")), provider=provider
            )
        return Unavailable(what, provider=provider)
    return BadPayload(what, provider=provider)


def refusal_errors(provider: str, title: str, *keys: str) -> Callable[[httpx.Response], ProviderError]:
    """The error hook of a platform whose refusals (400, 409, 422) carry its words in a JSON object, under
    the first of `keys` that is set: a Refused that shows them in chat ("<title> refused: <words>.").
    Any other answer, or one without words, is mapped by its status."""

    def errors(response: httpx.Response) -> ProviderError:
        error = map_response_error(response, provider)
        try:
            body = response.json()
            message = str(next((body.get(key) for key in keys if body.get(key)), "") or "")[:300]
        except (ValueError, AttributeError):
            message = ""
        if response.status_code in (400, 409, 422) and message:
            refused = Refused(f"{title} refused: {message} ({response.status_code}).", provider=provider)
            refused.user_message = f"{title} refused: {message}."
            return refused
        return error

    return errors


async def send(
    client: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    *,
    creating: bool = False,
    errors: Callable[[httpx.Response], ProviderError] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request and map transport failures and error statuses onto the error tree.

    `errors` is the platform's hook for its own error bodies (Square's codes, Acuity's refusals);
    without one, the shared status mapping applies.
    """
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise Unavailable(f"{provider}: timed out ({type(exc).__name__})", provider=provider) from exc
    except httpx.HTTPError as exc:
        raise Unavailable(f"{provider}: {type(exc).__name__}", provider=provider) from exc
    if response.status_code >= 400:
        raise errors(response) if errors is not None else map_response_error(response, provider, creating=creating)
    return response


def json_body(response: httpx.Response, provider: str, *, empty: Any = None, want_object: bool = False) -> Any:
    """A successful response's JSON (`empty` for no body); BadPayload when it is not JSON (or not an object)."""
    if not response.content:
        return empty
    try:
        body = response.json()
    except ValueError:
        raise BadPayload(f"{provider}: response is not JSON", provider=provider) from None
    if want_object and not isinstance(body, dict):
        raise BadPayload(f"{provider}: response is not a JSON object", provider=provider)
    return body
