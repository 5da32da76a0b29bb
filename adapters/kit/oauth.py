"""OAuth2 tokens shared by the booking platforms: the token endpoint call, bearer auth, and refreshes
that are safe with single-use (rotating) refresh tokens.

- `token_call` POSTs a form to a token endpoint and maps its answer: `invalid_grant` (a spent,
  revoked or expired grant) and 401 are AuthExpired, so the connection asks for a reconnect;
  429 is RateLimited (Retry-After or X-RateLimit-Reset); 5xx and transport failures Unavailable.
- `RefreshingTokens` hands out an access token, refreshing it shortly before it expires (or once
  more when the API answered 401 to it). With a core behind the connection the refresh goes through
  `ConnectionInfo.rotate_credentials`: under the connection's token lock, on the newest stored
  tokens, stored before the lock is released. So two refreshes of one connection never both spend
  the same refresh token, even from two provider objects or two processes.
- `RenewingAuth` is the httpx auth that asks a token source for the token per request and, after a
  401, once more for a token to replace the refused one; `BearerAuth` is it over `RefreshingTokens`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from typing import Any, Protocol

import httpx

from adapters.kit.http import make_client, parse_retry_after
from sync.contract import AuthExpired, BadPayload, ConnectionInfo, RateLimited, Refused, Unavailable

__all__ = ["EXPIRY_MARGIN", "BearerAuth", "Refresher", "RefreshingTokens", "RenewingAuth", "TokenSource",
           "token_call"]

#: Refresh this many seconds before the access token's expiry.
EXPIRY_MARGIN = 300.0
#: What a platform does to refresh: the stored document in, the new document out.
Refresher = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _oauth_error(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    code = body.get("error")
    text = body.get("error_description") or body.get("message") or body.get("title") or ""
    return (code if isinstance(code, str) else ""), str(text)[:200]


async def token_call(
    base_url: str, path: str, form: Mapping[str, str], *, provider: str, transport: Any = None
) -> dict[str, Any]:
    """POST `form` to a token endpoint; its JSON answer, or the error it means for the connection."""
    async with make_client(base_url, transport=transport) as http:
        try:
            response = await http.post(path, data=dict(form), headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise Unavailable(f"{provider}: token request failed ({type(exc).__name__})", provider=provider) from exc
    if response.status_code >= 400:
        code, text = _oauth_error(response)
        what = f"{provider}: token endpoint answered HTTP {response.status_code} {code or 'error'}"
        what += f": {text}" if text else ""
        if response.status_code == 429:
            wait = parse_retry_after(response.headers.get("Retry-After") or response.headers.get("X-RateLimit-Reset"))
            raise RateLimited(what, retry_after=wait, provider=provider)
        if response.status_code >= 500:
            raise Unavailable(what, provider=provider)
        if code in ("invalid_grant", "invalid_token", "unauthorized_client") or response.status_code == 401:
            raise AuthExpired(what + "; reconnect the account", provider=provider)
        raise Refused(what, provider=provider)
    try:
        body = response.json()
    except ValueError:
        raise BadPayload(f"{provider}: the token answer is not JSON", provider=provider) from None
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise BadPayload(f"{provider}: the token answer has no access_token", provider=provider)
    return body


class RefreshingTokens:
    """The connection's access token, refreshed before expiry through the platform's `refresher`.

    The credential document holds `access_token`, `refresh_token` and `expires_at` (unix seconds).
    A document without `refresh_token` (a personal token) is used as it is, and a 401 to it is final.
    """

    def __init__(
        self, conn: ConnectionInfo, refresher: Refresher, *, provider: str,
        clock: Callable[[], float] = time.time, margin: float = EXPIRY_MARGIN,
    ) -> None:
        self._conn = conn
        self._creds: dict[str, Any] = dict(conn.credentials or {})
        self._refresher = refresher
        self._provider = provider
        self._clock = clock
        self._margin = margin
        self._lock = asyncio.Lock()
        #: Refreshes this object made (tests, the benchmark).
        self.refreshes = 0

    @property
    def can_refresh(self) -> bool:
        """Whether a refused token can be replaced (there is a refresh token)."""
        return bool(self._creds.get("refresh_token"))

    def _usable(self, creds: Mapping[str, Any], stale: str | None) -> str | None:
        token = creds.get("access_token") or creds.get("password")
        if not isinstance(token, str) or not token or token == stale:
            return None
        if not creds.get("refresh_token"):
            return token  # a personal token: nothing to refresh it with
        try:
            expires = float(creds.get("expires_at") or 0)
        except (TypeError, ValueError):
            expires = 0.0
        return token if expires - self._margin > self._clock() else None

    async def access_token(self, *, stale: str | None = None) -> str:
        """A token valid for a while yet; `stale` names one the API has just refused."""
        async with self._lock:
            token = self._usable(self._creds, stale)
            if token is not None:
                return token
            if not self._creds.get("refresh_token"):
                raise AuthExpired(f"{self._provider}: the token was refused; reconnect the account",
                                  provider=self._provider)
            rotate = self._conn.rotate_credentials
            if rotate is not None:
                self._creds = dict(await rotate(lambda current: self._step(current, stale)))
            else:
                self._creds = await self._refresh(self._creds)
                if self._conn.save_credentials is not None:
                    await self._conn.save_credentials(dict(self._creds))
            self._conn.credentials = dict(self._creds)
            token = self._usable(self._creds, stale)
            if token is None:
                raise AuthExpired(f"{self._provider}: the refreshed token is not usable; reconnect the account",
                                  provider=self._provider)
            return token

    async def _step(self, current: dict[str, Any], stale: str | None) -> dict[str, Any] | None:
        """Under the token lock: keep what another refresh stored meanwhile, else refresh once."""
        if self._usable(current, stale) is not None:
            return None
        if not current.get("refresh_token"):
            raise AuthExpired(f"{self._provider}: no refresh token stored; reconnect the account",
                              provider=self._provider)
        return await self._refresh(current)

    async def _refresh(self, current: dict[str, Any]) -> dict[str, Any]:
        self.refreshes += 1
        return {**current, **await self._refresher(current)}


class TokenSource(Protocol):
    """An access token valid for a while yet; `stale` names one the API has just refused."""

    async def __call__(self, *, stale: str | None = None) -> str: ...


def _always() -> bool:
    return True


class RenewingAuth(httpx.Auth):
    """`Authorization: <scheme> <token>` with the token `token()` gives per request. After a 401, where
    `renewable()` allows, the answer is read and the request sent once more with `token(stale=<refused>)`.
    `client` names the client in the error a synchronous use raises (these clients are async only)."""

    def __init__(self, token: TokenSource, *, scheme: str = "Bearer", client: str = "HTTP",
                 renewable: Callable[[], bool] = _always) -> None:
        self._token = token
        self._scheme = scheme
        self._client = client
        self._renewable = renewable

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError(f"clinicbot's {self._client} client is async only")

    async def sign_in(self) -> None:
        """Get a token now (kept for the requests that follow), e.g. while the caller still plans."""
        await self._token()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._token()
        request.headers["Authorization"] = f"{self._scheme} {token}"
        response = yield request
        if response.status_code == 401 and self._renewable():
            await response.aread()
            request.headers["Authorization"] = f"{self._scheme} {await self._token(stale=token)}"
            yield request


class BearerAuth(RenewingAuth):
    """Bearer auth asking `tokens` per request, and once more with a fresh token after a 401 (where
    there is a refresh token to get one with)."""

    def __init__(self, tokens: RefreshingTokens) -> None:
        super().__init__(tokens.access_token, renewable=lambda: tokens.can_refresh)
