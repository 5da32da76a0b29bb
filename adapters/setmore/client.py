"""The Setmore HTTP client: its refresh-token exchange, Bearer access tokens, and its {"data": ...} envelope.

Setmore hands API users a refresh token (on request). `GET /o/oauth2/token?refreshToken=...` answers
{"data": {"token": {"access_token": ...}}}; the access token is used until the API answers 401, then
exchanged again once; a refresh token Setmore no longer accepts is AuthExpired (a reconnect card).
Answers wrap their content in {"response": true, "data": ...}; errors carry {"msg"} [I].
"""

from __future__ import annotations

from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, json_body, refusal_errors, send
from adapters.kit.session import SessionTokenClient
from sync.contract import AuthExpired, BadPayload, Refused

__all__ = ["PROVIDER", "SetmoreClient"]

PROVIDER = "setmore"


class SetmoreClient(SessionTokenClient):
    """JSON calls to one Setmore account, with its refresh token."""

    def __init__(self, base_url: str, refresh_token: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 policy: RetryPolicy | None = None) -> None:
        super().__init__(PROVIDER, base_url, errors=refusal_errors(PROVIDER, "Setmore", "msg"), transport=transport,
                         policy=policy)
        self._refresh = refresh_token

    async def _exchange(self) -> str:
        try:
            response = await send(self._http, PROVIDER, "GET", "o/oauth2/token", params={"refreshToken": self._refresh})
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
        return token

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      json: dict[str, Any] | None = None) -> Any:
        """One call; the envelope's `data`, or a ProviderError. A 401 exchanges the refresh token once more."""
        body = json_body(await self._send(method, path, params=params, json=json), PROVIDER, empty={},
                         want_object=False)
        return body.get("data") if isinstance(body, dict) else body
