"""Microsoft sign-in with MSAL: delegated auth-code + PKCE on /common, and client credentials.

- Delegated: `begin_sign_in` returns MSAL's flow dict (PKCE verifier, nonce, state) for the caller to
  keep, encrypted, in an OAuthState row bound to the chat user; `complete_sign_in` redeems the code.
  The `/common` authority lets work accounts and Outlook.com personal accounts sign in.
- Application: after admin consent, client credentials on the practice's tenant act on /users/{id}.
- Each connection's MSAL token cache is serialized into its credential document, which the core
  stores encrypted; a refresh writes it back through `ConnectionInfo.save_credentials`.
- MSAL is synchronous (requests), so every MSAL call runs in a worker thread. It keeps the real
  authority URL; tests inject a requests-compatible `http_client` that routes it to a loopback fake.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from adapters.graph.errors import PROVIDER, msal_error
from adapters.graph.settings import graph_settings
from adapters.kit.oauth import RenewingAuth
from sync.contract import AuthExpired, Refused, Unavailable

__all__ = [
    "DEFAULT_GRAPH_URL",
    "PERSONAL_TENANT",
    "ApplicationTokens",
    "BearerAuth",
    "DelegatedTokens",
    "GraphAuthConfig",
    "SignInStart",
    "begin_sign_in",
    "complete_sign_in",
]

log = logging.getLogger("clinicbot.graph.auth")

DEFAULT_GRAPH_URL = "https://graph.microsoft.com"
#: Tenant id of Microsoft personal accounts (Outlook.com); those have no getSchedule.
PERSONAL_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
_KNOWN_HOSTS = frozenset(msal.authority.WELL_KNOWN_AUTHORITY_HOSTS)


@dataclass(frozen=True)
class GraphAuthConfig:
    """The app registration and where its authority lives."""

    client_id: str
    client_secret: str | None
    login_url: str
    graph_url: str
    #: requests-compatible client for MSAL (None: MSAL's own requests.Session).
    http_client: Any = None

    @classmethod
    def from_settings(cls, settings: Any, http_client: Any = None) -> GraphAuthConfig:
        """Read the Graph app registration from Settings; Refused when none is configured."""
        own = graph_settings(settings)
        client_id = own.graph_client_id or own.microsoft_app_id
        if not client_id:
            raise Refused("Microsoft Graph is not configured: set CLINICBOT_GRAPH_CLIENT_ID", provider=PROVIDER)
        secret = own.graph_client_secret or (
            own.microsoft_app_password if not own.graph_client_id else None
        )
        return cls(client_id, secret, own.login_url.rstrip("/"), own.graph_url.rstrip("/"), http_client)

    def delegated_scopes(self) -> list[str]:
        # Outside the public cloud the resource must be named; MSAL adds openid/profile/offline_access.
        prefix = "" if self.graph_url == DEFAULT_GRAPH_URL else f"{self.graph_url}/"
        return [f"{prefix}Calendars.ReadWrite", f"{prefix}User.Read"]

    def application_scopes(self) -> list[str]:
        return [f"{self.graph_url}/.default"]

    def build_app(self, tenant: str, cache: msal.TokenCache | None = None) -> msal.ClientApplication:
        """An MSAL app on `tenant` (blocking: runs tenant discovery; call it in a thread)."""
        kwargs: dict[str, Any] = {"authority": f"{self.login_url}/{tenant}", "token_cache": cache}
        if self.http_client is not None:
            kwargs["http_client"] = self.http_client
        if urlsplit(self.login_url).hostname not in _KNOWN_HOSTS:
            # A sovereign or loopback authority that Microsoft's instance discovery doesn't know.
            kwargs["instance_discovery"] = False
        if self.client_secret:
            return msal.ConfidentialClientApplication(self.client_id, client_credential=self.client_secret, **kwargs)
        return msal.PublicClientApplication(self.client_id, **kwargs)


async def _in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except requests.RequestException as exc:
        raise Unavailable(f"{PROVIDER}: sign-in service unreachable ({type(exc).__name__})", provider=PROVIDER) from exc
    except ValueError as exc:
        # MSAL raises ValueError for a failed tenant discovery or a mismatched state.
        raise Refused(f"{PROVIDER}: sign-in refused ({str(exc)[:120]})", provider=PROVIDER) from exc


class _Memo:
    """The current access token until shortly before it expires, to spare MSAL's thread hop."""

    def __init__(self) -> None:
        self._token: str | None = None
        self._until = 0.0

    def get(self) -> str | None:
        return self._token if self._token and time.monotonic() < self._until else None

    def put(self, result: dict[str, Any]) -> str:
        self._token = str(result["access_token"])
        self._until = time.monotonic() + max(0.0, float(result.get("expires_in") or 0) - 120.0)
        return self._token


@dataclass(frozen=True)
class SignInStart:
    auth_uri: str
    #: MSAL's auth-code flow (state, PKCE verifier, nonce): secret; keep it encrypted until the callback.
    flow: dict[str, Any]


async def begin_sign_in(
    config: GraphAuthConfig,
    redirect_uri: str,
    *,
    state: str | None = None,
    login_hint: str | None = None,
    response_mode: str = "form_post",
) -> SignInStart:
    """Start the delegated auth-code flow with PKCE on /common.

    The default form_post keeps the code out of URLs and logs (RFC 9700); the callback route then
    receives it as a POSTed form. Pass "query" for a GET callback.
    """
    app = await _in_thread(config.build_app, "common")
    flow = await _in_thread(
        app.initiate_auth_code_flow,
        config.delegated_scopes(),
        redirect_uri=redirect_uri,
        state=state,
        login_hint=login_hint,
        response_mode=response_mode,
    )
    return SignInStart(auth_uri=flow["auth_uri"], flow=flow)


async def complete_sign_in(config: GraphAuthConfig, flow: dict[str, Any], response: dict[str, str]) -> dict[str, Any]:
    """Redeem the callback's code; returns the credential document for the new connection."""
    if response.get("error"):
        raise Refused(f"{PROVIDER}: sign-in was not completed ({response['error'][:60]})", provider=PROVIDER)
    cache = msal.SerializableTokenCache()
    app = await _in_thread(config.build_app, "common", cache)
    result = await _in_thread(app.acquire_token_by_auth_code_flow, flow, response)
    if "error" in result:
        raise msal_error(result, "sign-in")
    claims = result.get("id_token_claims") or {}
    accounts = await _in_thread(app.get_accounts)
    if not accounts:
        raise AuthExpired(f"{PROVIDER}: sign-in returned no account", provider=PROVIDER)
    return {
        "kind": "delegated",
        "token_cache": cache.serialize(),
        "home_account_id": accounts[0]["home_account_id"],
        "username": claims.get("preferred_username") or accounts[0].get("username"),
        "tenant_id": claims.get("tid"),
        "object_id": claims.get("oid"),
        "personal": claims.get("tid") == PERSONAL_TENANT,
    }


class DelegatedTokens:
    """Access tokens for one delegated connection, refreshed from its serialized MSAL cache."""

    def __init__(
        self,
        config: GraphAuthConfig,
        credentials: dict[str, Any],
        save: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        if credentials.get("kind") != "delegated" or not credentials.get("token_cache"):
            raise AuthExpired(f"{PROVIDER}: connection has no delegated sign-in; reconnect", provider=PROVIDER)
        self._config = config
        self._credentials = dict(credentials)
        self._save = save
        self._cache = msal.SerializableTokenCache()
        self._cache.deserialize(credentials["token_cache"])
        self._app: msal.ClientApplication | None = None
        self._lock = asyncio.Lock()
        self._memo = _Memo()

    @property
    def personal(self) -> bool:
        return bool(self._credentials.get("personal"))

    @property
    def username(self) -> str | None:
        return self._credentials.get("username")

    async def token(self, force_refresh: bool = False) -> str:
        """A valid access token; AuthExpired when the refresh token is expired or revoked."""
        async with self._lock:
            if not force_refresh and (cached := self._memo.get()):
                return cached
            if self._app is None:
                self._app = await _in_thread(self._config.build_app, "common", self._cache)
            app = self._app
            accounts = await _in_thread(app.get_accounts)
            account = next(
                (a for a in accounts if a.get("home_account_id") == self._credentials.get("home_account_id")),
                None,
            )
            if account is None:
                raise msal_error(None, "token refresh")
            result = await _in_thread(
                app.acquire_token_silent_with_error,
                self._config.delegated_scopes(),
                account,
                force_refresh=force_refresh,
            )
            if not result or "error" in result:
                raise msal_error(result, "token refresh")
            if self._cache.has_state_changed:
                self._credentials["token_cache"] = self._cache.serialize()
                self._cache.has_state_changed = False
                if self._save is not None:
                    await self._save(dict(self._credentials))
            return self._memo.put(result)


class ApplicationTokens:
    """App-only tokens (client credentials) for a practice's tenant, after admin consent."""

    def __init__(self, config: GraphAuthConfig, tenant_id: str) -> None:
        if not config.client_secret:
            raise Refused(f"{PROVIDER}: application permissions need CLINICBOT_GRAPH_CLIENT_SECRET", provider=PROVIDER)
        if not tenant_id or tenant_id in ("common", "organizations", "consumers"):
            raise Refused(f"{PROVIDER}: application permissions need the practice's tenant id", provider=PROVIDER)
        self._config = config
        self._tenant = tenant_id
        self._app: msal.ClientApplication | None = None
        self._lock = asyncio.Lock()
        self._memo = _Memo()

    personal = False

    async def token(self, force_refresh: bool = False) -> str:
        """A valid app-only token; AuthExpired when the secret or the consent is gone."""
        async with self._lock:
            if not force_refresh and (cached := self._memo.get()):
                return cached
            if self._app is None or force_refresh:
                self._app = await _in_thread(self._config.build_app, self._tenant)
            result = await _in_thread(self._app.acquire_token_for_client, self._config.application_scopes())
            if not result or "error" in result:
                raise msal_error(result, "client credentials")
            return self._memo.put(result)


class BearerAuth(RenewingAuth):
    """httpx auth: adds the bearer token, and on a 401 refreshes it once and resends."""

    def __init__(self, source: DelegatedTokens | ApplicationTokens) -> None:
        async def token(*, stale: str | None = None) -> str:
            return await source.token(force_refresh=stale is not None)

        super().__init__(token, client="Graph")
