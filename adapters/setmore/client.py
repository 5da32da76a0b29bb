"""The Setmore HTTP client: its refresh-token exchange, Bearer access tokens, and its {"data": ...} envelope.

Setmore hands API users a refresh token (on request). `GET /o/oauth2/token?refreshToken=...` answers
{"data": {"token": {"access_token": ...}}}; the access token is used until the API answers 401, then
exchanged again once; a refresh token Setmore no longer accepts is AuthExpired (a reconnect card).
Answers wrap their content in {"response": true, "data": ...}; errors carry {"msg"} [I].
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, json_body, make_client, map_response_error, send
from sync.contract import AuthExpired, BadPayload, ProviderError, Refused

__all__ = ["PROVIDER", "SetmoreClient"]

PROVIDER = "setmore"


def _map(response: httpx.Response) -> ProviderError:
    error = map_response_error(response, PROVIDER)
    try:
        message = str(response.json().get("msg") or "")[:300]
    except (ValueError, AttributeError):
        message = ""
    if response.status_code in (400, 409, 422) and message:
        refused = Refused(f"Setmore refused: {message} ({response.status_code}).", provider=PROVIDER)
        refused.user_message = f"Setmore refused: {message}."
        return refused
    return error


class SetmoreClient:
    """JSON calls to one Setmore account, with its refresh token."""

    def __init__(self, base_url: str, refresh_token: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 policy: RetryPolicy | None = None) -> None:
        self._http = make_client(base_url.rstrip("/") + "/", transport=transport, policy=policy or RetryPolicy(),
                                 max_connections=10)
        self._refresh = refresh_token
        self._access: str | None = None
        self._lock = asyncio.Lock()
        self.calls = 0
        self.exchanges = 0

    async def _token(self, stale: str | None = None) -> str:
        async with self._lock:
            if self._access is not None and self._access != stale:
                return self._access
            self.exchanges += 1
            self.calls += 1
            try:
                response = await send(self._http, PROVIDER, "GET", "o/oauth2/token",
                                      params={"refreshToken": self._refresh})
            except (AuthExpired, Refused) as exc:
                raise AuthExpired(f"setmore: the refresh token was refused ({exc})", provider=PROVIDER) from None
            body = json_body(response, PROVIDER, want_object=True)
            token = ((body.get("data") or {}).get("token") or {}).get("access_token") \
                if isinstance(body.get("data"), dict) else None
            if not isinstance(token, str) or not token:
                if body.get("response") is False:
                    raise AuthExpired(f"setmore: the refresh token was refused ({str(body.get('msg'))[:120]})",
                                      provider=PROVIDER)
                raise BadPayload("setmore: the token answer has no access token", provider=PROVIDER)
            self._access = token
            return token

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      json: dict[str, Any] | None = None) -> Any:
        """One call; the envelope's `data`, or a ProviderError. A 401 exchanges the refresh token once more."""
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
            body = json_body(response, PROVIDER, empty={}, want_object=False)
            return body.get("data") if isinstance(body, dict) else body
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._http.aclose()
