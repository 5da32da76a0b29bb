"""A JSON API client whose calls carry a Bearer token got by an exchange (a refresh token, a signed
session request) and kept until the API refuses it.

The token is exchanged on first use and again once when a call is answered 401; a second 401 on the
new token is the connection's AuthExpired (a reconnect card). Calls that saw the same refused token
share one exchange (the lock), so a burst of 401s costs one exchange, not one each.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, make_client, send
from sync.contract import AuthExpired, ProviderError

__all__ = ["SessionTokenClient"]


class SessionTokenClient(ABC):
    """Calls to one account of `provider` at `base_url` with an exchanged Bearer token; a platform
    says how it gets one (`_exchange`) and what a call's answer holds (its own `request`)."""

    def __init__(self, provider: str, base_url: str, *, errors: Callable[[httpx.Response], ProviderError],
                 transport: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None) -> None:
        self.provider = provider
        self._http = make_client(base_url.rstrip("/") + "/", transport=transport, policy=policy or RetryPolicy(),
                                 max_connections=10)
        self._errors = errors
        self._access: str | None = None
        self._lock = asyncio.Lock()
        #: Requests sent (exchanges included), and exchanges made.
        self.calls = 0
        self.exchanges = 0

    @abstractmethod
    async def _exchange(self) -> str:
        """A new access token (sent with `self._http`); AuthExpired when the platform refuses the credentials."""

    async def _token(self, stale: str | None = None) -> str:
        async with self._lock:
            if self._access is not None and self._access != stale:
                return self._access
            self.exchanges += 1
            self.calls += 1
            self._access = await self._exchange()
            return self._access

    async def _send(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    json: dict[str, Any] | None = None) -> httpx.Response:
        """One call with the token; a 401 exchanges it once more and sends the call again."""
        token = await self._token()
        for attempt in (1, 2):
            self.calls += 1
            try:
                return await send(self._http, self.provider, method, path.lstrip("/"), errors=self._errors,
                                  params=params, json=json, headers={"Authorization": f"Bearer {token}"})
            except AuthExpired:
                if attempt == 2:
                    raise
                token = await self._token(stale=token)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._http.aclose()
