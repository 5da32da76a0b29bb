"""An msrest pipeline sender on one shared aiohttp session, for the cached connector clients.

msrest's default async sender runs `requests` in a thread pool, one session per client; its
aiohttp sender (`msrest.pipeline.aiohttp`) sends neither headers nor body. This one sends the
request as msrest built it, keeps connections alive across turns, and retries what the Bot
Connector documents as retryable (429 and 503, honouring Retry-After; connection failures).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import aiohttp
from msrest.exceptions import ClientRequestError
from msrest.pipeline import AsyncHTTPSender, Request, Response
from msrest.universal_http import ClientRequest
from msrest.universal_http.aiohttp import AioHttpClientResponse

__all__ = ["SharedSessionSender"]

log = logging.getLogger("clinicbot.teams.transport")

RETRY_STATUSES = (429, 503)
MAX_ATTEMPTS = 3
MAX_RETRY_AFTER = 10.0


#: Retry-After's delta-seconds: ASCII digits (float() also takes "nan", "inf", "1_0" and "٣").
_SECONDS = re.compile(r"[0-9]{1,10}(\.[0-9]{1,6})?", re.ASCII)


def _retry_after(value: str | None, attempt: int) -> float:
    text = (value or "").strip()
    if _SECONDS.fullmatch(text):
        return min(float(text), MAX_RETRY_AFTER)
    return min(0.25 * 2**attempt, MAX_RETRY_AFTER)


class SharedSessionSender(AsyncHTTPSender):  # type: ignore[misc]
    """Sends msrest requests with an aiohttp session shared by every connector client."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float = 30.0) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def __aenter__(self) -> SharedSessionSender:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None  # the session belongs to whoever made it

    def build_context(self) -> None:
        return None

    async def send(self, request: Request, **config: Any) -> Response:
        return Response(request, await self.exchange(request.http_request))

    async def exchange(self, http: ClientRequest) -> AioHttpClientResponse:
        """Send one request as built (retrying as documented) and return it with its body read."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                raw = await self._session.request(
                    http.method, http.url, headers=dict(http.headers), data=http.data, timeout=self._timeout
                )
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                if attempt + 1 == MAX_ATTEMPTS:
                    raise ClientRequestError(f"Bot Connector unreachable: {type(exc).__name__}") from exc
                await asyncio.sleep(_retry_after(None, attempt))
                continue
            response = AioHttpClientResponse(http, raw)
            try:
                await response.load_body()
            finally:
                raw.release()
            if raw.status in RETRY_STATUSES and attempt + 1 < MAX_ATTEMPTS:
                delay = _retry_after(raw.headers.get("Retry-After"), attempt)
                log.info("connector asked to retry", extra={"status": raw.status, "delay": delay})
                await asyncio.sleep(delay)
                continue
            return response
        raise AssertionError("unreachable")
