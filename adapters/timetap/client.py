"""The TimeTap HTTP client: a session token obtained with a signed request, renewed when refused.

`GET /sessionToken?apiKey&timestamp&signature` with signature = MD5 hex of apiKey + private key +
timestamp [I] answers {"sessionToken"}; calls carry it as a Bearer token. A 401 gets a new session
once; a signature TimeTap refuses is AuthExpired (the key pair is wrong or revoked). The private key
never travels: only the signature does.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, json_body, refusal_errors, send
from adapters.kit.session import SessionTokenClient
from sync.contract import AuthExpired, BadPayload, Refused

__all__ = ["PROVIDER", "TimeTapClient", "session_signature"]

PROVIDER = "timetap"


def session_signature(api_key: str, private_key: str, timestamp: int) -> str:
    """The signature of a session request [I]: MD5 hex of the API key, the private key and the timestamp."""
    return hashlib.md5(f"{api_key}{private_key}{timestamp}".encode(), usedforsecurity=False).hexdigest()


class TimeTapClient(SessionTokenClient):
    """JSON calls to one TimeTap business, with its API key pair."""

    def __init__(self, base_url: str, api_key: str, private_key: str, *,
                 transport: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(PROVIDER, base_url, errors=refusal_errors(PROVIDER, "TimeTap", "errorMessage", "message"),
                         transport=transport, policy=policy)
        self._key, self._private = api_key, private_key
        self._clock = clock

    async def _exchange(self) -> str:
        stamp = int(self._clock())
        try:
            response = await send(self._http, PROVIDER, "GET", "sessionToken", params={
                "apiKey": self._key, "timestamp": str(stamp),
                "signature": session_signature(self._key, self._private, stamp)})
        except (AuthExpired, Refused) as exc:
            raise AuthExpired(f"timetap: the API key pair was refused ({exc})", provider=PROVIDER) from None
        token = json_body(response, PROVIDER, want_object=True).get("sessionToken")
        if not isinstance(token, str) or not token:
            raise BadPayload("timetap: the session answer has no token", provider=PROVIDER)
        return token

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      json: dict[str, Any] | None = None) -> Any:
        """One call; its JSON, or a ProviderError. A 401 gets a new session once."""
        return json_body(await self._send(method, path, params=params, json=json), PROVIDER, empty={})
