"""The Nylas v3 HTTP client: the shared httpx factory with the application's API key, and Nylas's
error bodies mapped onto the shared tree.

Every call is authenticated with the application's API key (`Authorization: Bearer <key>`) and
names the grant in its path (`/v3/grants/{grant_id}/...`). A failed call answers
`{request_id, error: {type, message, provider_error}}`; the status says which branch of the tree it
is, and `type` sharpens it (an invalid API key is a setup problem, not an expired grant). 429 is
retried by the shared transport when its Retry-After is short, and raised as RateLimited otherwise.
"""

from __future__ import annotations

from typing import Any

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
)

__all__ = ["PROVIDER", "NylasClient", "error_type", "map_nylas_error", "provider_said"]

PROVIDER = "nylas"
#: Types Nylas gives a bad application credential (not the person's grant): fixing it is the admin's job.
API_KEY_TYPES = frozenset({"token.unauthorized_access", "api.authentication_error.api_key", "invalid_api_key"})


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def error_type(response: httpx.Response) -> str:
    """The `error.type` of a Nylas error body ("unknown" when the body is not one, as the SDK says)."""
    kind = _error(response).get("type")
    return kind if isinstance(kind, str) and kind else "unknown"


def provider_said(response: httpx.Response) -> str:
    """The `provider_error` of a Nylas error body (Microsoft's or Google's own code and message), clipped."""
    raw = _error(response).get("provider_error")
    if isinstance(raw, dict):
        nested = raw.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else raw
        parts = [str(inner.get(k)) for k in ("code", "error", "message", "error_description") if inner.get(k)]
        text = " ".join(parts) if parts else ""
    else:
        text = str(raw or "")
    return " ".join(text.split())[:200]


def map_nylas_error(response: httpx.Response) -> ProviderError:
    """The shared error for a failed Nylas response (status >= 400); the message never carries event content."""
    status, kind = response.status_code, error_type(response)
    message = str(_error(response).get("message") or "")[:200]
    what = f"nylas: HTTP {status} {kind} on {response.request.method} {response.request.url.path}"
    said = provider_said(response)
    if said:  # the provider's own words (AADSTS codes, "application-specific password ...") for troubleshooting
        what += f" (provider said: {said})"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if kind in API_KEY_TYPES:
        return Refused(f"{what}: the Nylas API key was rejected; check CLINICBOT_NYLAS_API_KEY and the region "
                       "(CLINICBOT_NYLAS_API_URL)", provider=PROVIDER)
    if status == 401:
        return AuthExpired(what, provider=PROVIDER)
    if status == 429:
        return RateLimited(what, retry_after=retry_after, provider=PROVIDER)
    if status in (404, 410):
        return NotFound(what, provider=PROVIDER)
    if status == 409:
        return AlreadyExists(what, provider=PROVIDER)
    if status == 403:
        if kind == "insufficient_scopes":
            return Refused(f"{what}: the sign-in did not grant calendar access; reconnect and allow calendars",
                           provider=PROVIDER)
        return Refused(f"{what}: {message}", provider=PROVIDER)
    if status >= 500 or status == 423:
        if retry_after is not None:
            return RateLimited(what, retry_after=retry_after, provider=PROVIDER)
        return Unavailable(what, provider=PROVIDER)
    # 400 invalid_request_error and the like: Nylas refused what we asked; its message says why.
    return Refused(f"{what}: {message}", provider=PROVIDER)


class NylasClient:
    """JSON calls against the Nylas v3 API with the application's API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._http = make_client(
            base_url, headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            transport=transport, policy=policy,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send one call; the JSON object it answered ({} for an empty body), or a ProviderError."""
        response = await send(self._http, PROVIDER, method, path, params=params, json=json, errors=map_nylas_error)
        body = json_body(response, PROVIDER, empty={}, want_object=True)
        assert isinstance(body, dict)
        return body

    async def data(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The `data` object of a single-object answer; BadPayload when there is none."""
        body = await self.request(method, path, **kwargs)
        data = body.get("data")
        if not isinstance(data, dict):
            raise BadPayload(f"nylas: {method} {path.split('?')[0]} answered without a data object", provider=PROVIDER)
        return data

    async def pages(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every object of a listing, following `next_cursor` as `page_token`."""
        found: list[dict[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            query = {**params, **({"page_token": token} if token else {})}
            body = await self.request("GET", path, params=query)
            data = body.get("data")
            if not isinstance(data, list):
                raise BadPayload("nylas: a listing without a data list", provider=PROVIDER)
            found += [d for d in data if isinstance(d, dict)]
            token = body.get("next_cursor") or None
            if token is None:
                return found
            if not isinstance(token, str) or token in seen:
                raise BadPayload("nylas: a listing's next_cursor repeats or is not text", provider=PROVIDER)
            seen.add(token)

    async def aclose(self) -> None:
        await self._http.aclose()
