"""The YouCanBookMe HTTP client: Basic auth (account login + API key) on `/v1/<account id>/...`.

Errors are HTTP statuses with a JSON {"message"} body [I]; 401 is a reconnect, 404 a booking that is
gone, 429 waits as the shared transport does (Retry-After), then RateLimited.
"""

from __future__ import annotations

from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, json_body, make_client, refusal_errors, send

__all__ = ["PROVIDER", "YouCanBookMeClient"]

PROVIDER = "youcanbookme"

_map = refusal_errors(PROVIDER, "YouCanBookMe", "message")


class YouCanBookMeClient:
    """JSON calls to one YouCanBookMe account."""

    def __init__(self, base_url: str, account_id: str, auth: httpx.Auth, *,
                 transport: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None) -> None:
        self.account_id = account_id
        self._http = make_client(f"{base_url.rstrip('/')}/v1/{account_id}/", transport=transport, auth=auth,
                                 policy=policy or RetryPolicy(), max_connections=10)
        self.calls = 0

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      json: dict[str, Any] | None = None) -> Any:
        self.calls += 1
        response = await send(self._http, PROVIDER, method, path.lstrip("/"), errors=_map, params=params, json=json)
        return json_body(response, PROVIDER)

    async def aclose(self) -> None:
        await self._http.aclose()
