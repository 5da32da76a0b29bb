"""The TimeTap HTTP client: a session token obtained with a signed request, renewed when refused.

`GET /sessionToken?apiKey&timestamp&signature` with signature = MD5 hex of apiKey + private key +
timestamp [I] answers {"sessionToken"}; calls carry it as a Bearer token. A 401 gets a new session
once; a signature TimeTap refuses is AuthExpired (the key pair is wrong or revoked). The private key
never travels: only the signature does.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, json_body, make_client, map_response_error, send
from sync.contract import AuthExpired, BadPayload, ProviderError, Refused

__all__ = ["PROVIDER", "TimeTapClient", "session_signature"]

PROVIDER = "timetap"


def session_signature(api_key: str, private_key: str, timestamp: int) -> str:
    """The signature of a session request [I]: MD5 hex of the API key, the private key and the timestamp."""
    return hashlib.md5(f"{api_key}{private_key}{timestamp}".encode(), usedforsecurity=False).hexdigest()


def _map(response: httpx.Response) -> ProviderError:
    error = map_response_error(response, PROVIDER)
    try:
        message = str(response.json().get("errorMessage") or response.json().get("message") or "")[:300]
    except (ValueError, AttributeError):
        message = ""
    if response.status_code in (400, 409, 422) and message:
        refused = Refused(f"TimeTap refused: {message} ({response.status_code}).", provider=PROVIDER)
        refused.user_message = f"TimeTap refused: {message}."
        return refused
    return error


class TimeTapClient:
    """JSON calls to one TimeTap business, with its API key pair."""

    def __init__(self, base_url: str, api_key: str, private_key: str, *,
                 transport: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._http = make_client(base_url.rstrip("/") + "/", transport=transport, policy=policy or RetryPolicy(),
                                 max_connections=10)
        self._key, self._private = api_key, private_key
        self._clock = clock
        self._session: str | None = None
        self._lock = asyncio.Lock()
        self.calls = 0
        self.sessions = 0

    async def _token(self, stale: str | None = None) -> str:
        async with self._lock:
            if self._session is not None and self._session != stale:
                return self._session
            stamp = int(self._clock())
            self.sessions += 1
            self.calls += 1
            try:
                response = await send(self._http, PROVIDER, "GET", "sessionToken", params={
                    "apiKey": self._key, "timestamp": str(stamp),
                    "signature": session_signature(self._key, self._private, stamp)})
            except (AuthExpired, Refused) as exc:
                raise AuthExpired(f"timetap: the API key pair was refused ({exc})", provider=PROVIDER) from None
            token = json_body(response, PROVIDER, want_object=True).get("sessionToken")
            if not isinstance(token, str) or not token:
                raise BadPayload("timetap: the session answer has no token", provider=PROVIDER)
            self._session = token
            return token

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      json: dict[str, Any] | None = None) -> Any:
        token = await self._token()
        for attempt in (1, 2):
            self.calls += 1
            try:
                response = await send(self._http, PROVIDER, method, path.lstrip("/"), errors=_map, params=params,
                                      json=json, headers={"Authorization": f"Bearer {token}"})
            except AuthExpired:
                if attempt == 2:
                    raise
                token = await self._token(stale=token)
                continue
            return json_body(response, PROVIDER, empty={})
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._http.aclose()
