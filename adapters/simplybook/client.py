"""The SimplyBook.me JSON-RPC client: admin login with a token of about an hour, re-login on expiry, and
SimplyBook's JSON-RPC errors (which arrive with HTTP 200) mapped onto the shared error tree.

Login is `getUserToken(companyLogin, userLogin, password)` on `<api>/login`; calls go to `<api>/admin`
with the `X-Company-Login` and `X-User-Token` headers. A token is reused until it is older than the
configured lifetime; one the server rejects anyway (expired early, revoked) is dropped, the client logs
in once more and repeats the call; a second rejection is a refusal (the user lacks that permission).
The code SimplyBook uses for a rejected token is not documented: `TOKEN_CODES` holds what is assumed,
and an HTTP 401/403 counts too.

The same client speaks the public (company) API when made with `SimplyBookClient.public`: login is
`getToken(companyLogin, apiKey)` on `<api>/login`, calls go to `<api>/` with `X-Company-Login` and
`X-Token`. clinicbot uses it for one thing: reading a booking a callback named, signed with the
company's secret key (`signed_fetch_sign`).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, json_body, make_client, send
from sync.contract import AuthExpired, BadPayload, NotFound, ProviderError, Refused

__all__ = ["LOGIN_ERRORS", "PROVIDER", "TOKEN_CODES", "SimplyBookClient", "map_rpc_error", "signed_fetch_sign"]

PROVIDER = "simplybook"
#: getUserToken's documented refusals, in words for the admin (activepieces' SimplyBook piece lists them).
LOGIN_ERRORS = {
    -33001: "the SimplyBook company login does not exist",
    -33002: "SimplyBook did not accept the key",
    -33003: "SimplyBook did not accept the user login or password",
    -33004: "the SimplyBook user is blocked",
    -33005: "SimplyBook's HIPAA setting blocks API access for this company",
}
#: JSON-RPC error codes taken to mean "this token is no longer valid" [I]: -32600 is what SimplyBook
#: answers for "Access denied" (seen in public reports), also for a method the user may not call.
TOKEN_CODES = frozenset({-32600})


def signed_fetch_sign(booking_id: str, booking_hash: str, secret_key: str) -> str:
    """The `sign` of a public booking read: md5(booking id + booking hash + the company's secret key), hex."""
    return hashlib.md5(f"{booking_id}{booking_hash}{secret_key}".encode(), usedforsecurity=False).hexdigest()


class _TokenRejected(Exception):
    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


def map_rpc_error(method: str, error: Any) -> ProviderError:
    """A JSON-RPC error object onto the shared error tree; the message keeps SimplyBook's own words."""
    if not isinstance(error, dict):
        return BadPayload(f"simplybook: {method} answered an error that is not an object", provider=PROVIDER)
    try:
        code = int(error.get("code") or 0)
    except (TypeError, ValueError):
        code = 0
    message = str(error.get("message") or "")[:300]
    what = f"simplybook: {method} failed ({code}): {message}"
    if code in LOGIN_ERRORS:
        words = LOGIN_ERRORS[code]
        if code == -33005:
            refused = Refused(f"{what} ({words})", provider=PROVIDER)
            refused.user_message = f"SimplyBook refused: {words}."
            return refused
        expired = AuthExpired(f"{what} ({words})", provider=PROVIDER)
        expired.user_message = f"SimplyBook refused the sign-in: {words}. Reconnect it."
        return expired
    if "not found" in message.lower():
        return NotFound(what, provider=PROVIDER)
    if code == -32601:
        return Refused(f"{what} (the method is not available to this account)", provider=PROVIDER)
    refused = Refused(f"SimplyBook refused: {message or 'no reason given'} ({code}).", provider=PROVIDER)
    refused.user_message = f"SimplyBook refused: {message or 'no reason given'}."
    return refused


class SimplyBookClient:
    """JSON-RPC calls to one SimplyBook.me company, as one admin user."""

    def __init__(self, base_url: str, company: str, user: str, password: str, *, token_seconds: float = 3000.0,
                 transport: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.company = company
        self._user, self._password = user, password
        #: Admin API (getUserToken, /admin, X-User-Token); `public` switches these to the company API.
        self._login_method, self._path, self._token_header = "getUserToken", "admin", "X-User-Token"
        self._login_params: list[Any] = [company, user, password]
        self._http = make_client(base_url.rstrip("/") + "/", transport=transport, policy=policy or RetryPolicy(),
                                 max_connections=10)
        self._token: str | None = None
        self._token_at = 0.0
        self._lifetime = token_seconds
        self._clock = clock
        self._login_lock = asyncio.Lock()
        self._ids = itertools.count(1)
        #: Calls made (logins included), for tests and `doctor`.
        self.calls = 0
        self.logins = 0

    @classmethod
    def public(cls, base_url: str, company: str, api_key: str, *, token_seconds: float = 3000.0,
               transport: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None,
               clock: Callable[[], float] = time.monotonic) -> SimplyBookClient:
        """A client of the company's public API, logged in with its API key."""
        client = cls(base_url, company, "", api_key, token_seconds=token_seconds, transport=transport,
                     policy=policy, clock=clock)
        client._login_method, client._path, client._token_header = "getToken", "", "X-Token"
        client._login_params = [company, api_key]
        return client

    async def call(self, method: str, *params: Any, read: bool = True) -> Any:
        """One admin call; the result, or a ProviderError. `read` calls may be resent after a network error."""
        token = await self._login()
        try:
            return await self._rpc(self._path, method, list(params), token=token, read=read)
        except _TokenRejected:
            self._drop(token)
        token = await self._login()
        try:
            return await self._rpc(self._path, method, list(params), token=token, read=read)
        except _TokenRejected as again:
            raise Refused(f"{again.error} (after a fresh login: the user may not call {method})",
                          provider=PROVIDER) from None

    async def _login(self) -> str:
        async with self._login_lock:
            if self._token is not None and self._clock() - self._token_at < self._lifetime:
                return self._token
            self.logins += 1
            token = await self._rpc("login", self._login_method, self._login_params, token=None, read=True)
            if not isinstance(token, str) or not token:
                raise BadPayload(f"simplybook: {self._login_method} returned no token", provider=PROVIDER)
            self._token, self._token_at = token, self._clock()
            return token

    def _drop(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def _rpc(self, path: str, method: str, params: list[Any], *, token: str | None, read: bool) -> Any:
        headers = {"X-Company-Login": self.company}
        if token is not None:
            headers[self._token_header] = token
        payload = {"jsonrpc": "2.0", "method": method, "params": params, "id": next(self._ids)}
        self.calls += 1
        try:
            response = await send(self._http, PROVIDER, "POST", path, json=payload, headers=headers,
                                  extensions={"clinicbot_idempotent": read})
        except AuthExpired as exc:  # HTTP 401 on a call: the token, not the login
            if token is None:
                raise
            raise _TokenRejected(exc) from None
        except Refused as exc:  # HTTP 403
            if token is None:
                raise
            raise _TokenRejected(exc) from None
        body = json_body(response, PROVIDER, want_object=True)
        if "error" in body and body["error"] is not None:
            error = map_rpc_error(method, body["error"])
            code = body["error"].get("code") if isinstance(body["error"], dict) else None
            if token is not None and code in TOKEN_CODES:
                raise _TokenRejected(error)
            raise error
        if "result" not in body:
            raise BadPayload(f"simplybook: {method} answered neither result nor error", provider=PROVIDER)
        return body["result"]

    async def aclose(self) -> None:
        await self._http.aclose()
