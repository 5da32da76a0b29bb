"""Google OAuth 2.0: the authorization-code flow with PKCE, token refresh, and bearer auth for httpx.

The credential document the core stores (encrypted) for a Google connection::

    {"refresh_token": ..., "access_token": ..., "expires_at": <epoch seconds>, "scope": ...}

A refresh that Google answers with invalid_grant (revoked, expired, password changed) raises
AuthExpired, which the chat turns into a reconnect card.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from adapters.google.settings import google_settings
from adapters.kit.http import make_client
from adapters.kit.oauth import RenewingAuth
from sync.contract import AuthExpired, BadPayload, ConnectionInfo, Refused, Unavailable
from sync.contract.integration import HostSettings

__all__ = [
    "DRIVE_SCOPE",
    "SCOPES",
    "AuthorizationRequest",
    "GoogleAuth",
    "GoogleTokens",
    "authorization_request",
    "exchange_code",
    "granted",
    "pkce_pair",
    "redirect_uri",
    "revoke_token",
]

PROVIDER = "google"
#: Calendars and events read/write, free/busy and watch channels.
SCOPES = ("https://www.googleapis.com/auth/calendar",)
#: Reading the Drive files attached to events (`connect google --attachments on`). `drive.file`
#: would not do: it covers only files the app created or the user opened with it, and attachments
#: are files other people put on the event. `drive.readonly` is a restricted scope (Google's
#: verification and a security assessment for a public app), so it is asked only of those who opt in,
#: by incremental authorization (include_granted_scopes) on top of the calendar grant.
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive.readonly"
#: Scopes that also let clinicbot read a file's content (the full Drive scope includes read access).
DRIVE_READ_SCOPES = frozenset({DRIVE_SCOPE, "https://www.googleapis.com/auth/drive"})
#: Refresh this long before the access token's stated expiry.
EXPIRY_MARGIN_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Where to send the user, and what to keep (encrypted) until the callback comes back."""

    url: str
    state: str
    code_verifier: str
    redirect_uri: str


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier (RFC 7636: 43-128 unreserved characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def redirect_uri(settings: HostSettings) -> str:
    """The OAuth callback route of this server."""
    return f"{settings.base_url()}/oauth/google/callback"


def _client_credentials(settings: HostSettings) -> tuple[str, str]:
    own = google_settings(settings)
    if not own.google_client_id or not own.google_client_secret:
        raise Refused(
            "Google is not configured: set CLINICBOT_GOOGLE_CLIENT_ID and CLINICBOT_GOOGLE_CLIENT_SECRET",
            provider=PROVIDER,
        )
    return own.google_client_id, own.google_client_secret


def granted(credentials: dict[str, Any] | None, scope: str) -> bool:
    """Whether the stored grant includes `scope` (Google's token answer lists the granted scopes)."""
    return scope in str((credentials or {}).get("scope", "")).split()


def authorization_request(
    settings: HostSettings,
    *,
    redirect: str | None = None,
    login_hint: str | None = None,
    extra_scopes: tuple[str, ...] = (),
) -> AuthorizationRequest:
    """Build the consent URL (offline access, PKCE S256, a fresh random state); `extra_scopes` are
    asked on top of the calendar scope, and include_granted_scopes keeps what was granted before."""
    client_id, _ = _client_credentials(settings)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(32)
    target = redirect or redirect_uri(settings)
    params = {
        "client_id": client_id,
        "redirect_uri": target,
        "response_type": "code",
        "scope": " ".join((*SCOPES, *extra_scopes)),
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if login_hint:
        params["login_hint"] = login_hint
    auth_url = google_settings(settings).google_auth_url
    return AuthorizationRequest(f"{auth_url}?{urlencode(params)}", state, verifier, target)


def _lifetime(raw: Any) -> float:
    """A token's `expires_in` in seconds; BadPayload for "soon", null, negative or infinite values."""
    try:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ValueError(raw)
        seconds = float(raw)
    except ValueError:
        raise BadPayload("google: token response with an unreadable expires_in", provider=PROVIDER) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadPayload("google: token response with an unreadable expires_in", provider=PROVIDER)
    return seconds


async def _token_call(
    settings: HostSettings, form: dict[str, str], transport: Any, clock: Callable[[], float]
) -> dict[str, Any]:
    client_id, client_secret = _client_credentials(settings)
    form = {**form, "client_id": client_id, "client_secret": client_secret}
    async with make_client(google_settings(settings).google_oauth_url, transport=transport) as http:
        try:
            response = await http.post("/token", data=form)
        except httpx.HTTPError as exc:
            raise Unavailable(f"google: token endpoint unreachable ({type(exc).__name__})", provider=PROVIDER) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 500:
        raise Unavailable(f"google: token endpoint HTTP {response.status_code}", provider=PROVIDER)
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        if error == "invalid_grant":
            raise AuthExpired("google: the grant was revoked, expired or already used", provider=PROVIDER)
        if error == "invalid_client":
            raise Refused(
                "google: the client id/secret were rejected; check CLINICBOT_GOOGLE_CLIENT_*",
                provider=PROVIDER,
            )
        raise Refused(
            f"google: token endpoint refused the request ({error or response.status_code})", provider=PROVIDER
        )
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise BadPayload("google: token response without access_token", provider=PROVIDER)
    expires_in = _lifetime(body.get("expires_in", 3600))
    return {
        "access_token": body["access_token"],
        "expires_at": clock() + expires_in,
        "scope": body.get("scope", ""),
        **({"refresh_token": body["refresh_token"]} if isinstance(body.get("refresh_token"), str) else {}),
    }


async def exchange_code(
    settings: HostSettings,
    code: str,
    code_verifier: str,
    redirect: str,
    *,
    transport: Any = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Trade the callback's code (with the PKCE verifier) for the credential document."""
    creds = await _token_call(
        settings,
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": code_verifier,
            "redirect_uri": redirect,
        },
        transport,
        clock,
    )
    if "refresh_token" not in creds:
        raise Refused(
            "google: no refresh token granted; remove clinicbot's access in the Google account and connect again",
            provider=PROVIDER,
        )
    return creds


async def revoke_token(settings: HostSettings, token: str, *, transport: Any = None) -> None:
    """Tell Google to revoke a token (on disconnect); an already revoked one is fine."""
    async with make_client(google_settings(settings).google_oauth_url, transport=transport) as http:
        try:
            await http.post("/revoke", data={"token": token})
        except httpx.HTTPError as exc:
            raise Unavailable(f"google: revoke endpoint unreachable ({type(exc).__name__})", provider=PROVIDER) from exc


class GoogleTokens:
    """Hands out a valid access token, refreshing it (once at a time) and saving the result."""

    def __init__(self, settings: HostSettings, conn: ConnectionInfo, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._creds: dict[str, Any] = dict(conn.credentials or {})
        self._save: Callable[[dict[str, Any]], Awaitable[None]] | None = conn.save_credentials
        self._transport = conn.transport
        self._clock = clock
        self._lock = asyncio.Lock()

    def scopes(self) -> frozenset[str]:
        """The scopes the stored grant lists (refreshed with each token)."""
        return frozenset(str(self._creds.get("scope", "")).split())

    async def access_token(self, *, stale: str | None = None) -> str:
        """A token valid for at least a minute; `stale` names one the server just rejected."""
        async with self._lock:
            token = self._creds.get("access_token")
            fresh = float(self._creds.get("expires_at", 0)) - EXPIRY_MARGIN_SECONDS > self._clock()
            if isinstance(token, str) and fresh and token != stale:
                return token
            await self._refresh()
            return str(self._creds["access_token"])

    async def _refresh(self) -> None:
        refresh = self._creds.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            raise AuthExpired("google: no refresh token stored", provider=PROVIDER)
        new = await _token_call(
            self._settings,
            {"grant_type": "refresh_token", "refresh_token": refresh},
            self._transport,
            self._clock,
        )
        self._creds = {**self._creds, **new}
        if self._save is not None:
            await self._save(dict(self._creds))


class GoogleAuth(RenewingAuth):
    """Bearer auth that refreshes before expiry, and once more when the API answers 401."""

    def __init__(self, tokens: GoogleTokens) -> None:
        super().__init__(tokens.access_token, client="Google")
