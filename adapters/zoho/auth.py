"""Zoho OAuth 2.0 per data centre: the consent round trip, token refresh, and `Zoho-oauthtoken` auth for httpx.

A Zoho account lives in one data centre (accounts.zoho.com, .eu, .in, .com.au, .jp, .uk, .sa). Sign-in
starts at the default one; Zoho's callback names the person's own (`location`, `accounts-server`),
and the code is redeemed there; its calendars are then at calendar.zoho.<dc>. Only the data centres
in `DATA_CENTRES` are accepted, so a callback cannot send clinicbot's client secret to another host.
Access tokens last an hour; the refresh token is kept encrypted, with the data centre, as::

    {"refresh_token": ..., "access_token": ..., "expires_at": <epoch seconds>, "dc": "eu"}

Zoho's token endpoint answers some refusals with HTTP 200 and {"error": ...}; `invalid_code` on a
refresh means the grant is gone, and becomes AuthExpired (a reconnect card).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from adapters.kit.http import make_client
from adapters.kit.oauth import RenewingAuth
from adapters.zoho.settings import zoho_settings
from sync.contract import AuthExpired, BadPayload, ConnectionInfo, Refused, Unavailable
from sync.contract.integration import HostSettings

__all__ = ["DATA_CENTRES", "SCOPES", "ZohoAuth", "ZohoTokens", "data_centre"]

PROVIDER = "zoho"
SCOPES = ("ZohoCalendar.calendar.ALL", "ZohoCalendar.event.ALL")
#: Zoho's `location` in the callback -> the domain suffix of that data centre's hosts.
DATA_CENTRES = {"us": "com", "eu": "eu", "in": "in", "au": "com.au", "jp": "jp", "uk": "uk", "sa": "sa"}
EXPIRY_MARGIN_SECONDS = 60.0


def data_centre(location: str | None, accounts_server: str | None, host: HostSettings) -> str:
    """The data centre a callback names; Refused for one clinicbot does not know (or a host that disagrees)."""
    own = zoho_settings(host)
    if not location:
        return own.zoho_default_dc
    dc = DATA_CENTRES.get(location.strip().lower())
    if dc is None:
        raise Refused(f"zoho: unknown data centre {location[:20]!r}", provider=PROVIDER)
    if accounts_server and accounts_server.rstrip("/") != own.accounts(dc):
        raise Refused("zoho: the callback's accounts server does not belong to its data centre", provider=PROVIDER)
    return dc


def _client(host: HostSettings) -> tuple[str, str]:
    own = zoho_settings(host)
    if not own.zoho_client_id or not own.zoho_client_secret:
        raise Refused("Zoho is not configured: set CLINICBOT_ZOHO_CLIENT_ID and CLINICBOT_ZOHO_CLIENT_SECRET",
                      provider=PROVIDER)
    return own.zoho_client_id, own.zoho_client_secret


async def _token_call(host: HostSettings, dc: str, form: dict[str, str], transport: Any,
                      clock: Callable[[], float]) -> dict[str, Any]:
    client_id, client_secret = _client(host)
    form = {**form, "client_id": client_id, "client_secret": client_secret}
    async with make_client(zoho_settings(host).accounts(dc), transport=transport) as http:
        try:
            response = await http.post("/oauth/v2/token", data=form)
        except httpx.HTTPError as exc:
            raise Unavailable(f"zoho: accounts server unreachable ({type(exc).__name__})", provider=PROVIDER) from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise Unavailable(f"zoho: accounts server HTTP {response.status_code}", provider=PROVIDER)
    try:
        body = response.json()
    except ValueError:
        raise BadPayload("zoho: token answer is not JSON", provider=PROVIDER) from None
    error = body.get("error") if isinstance(body, dict) else "unreadable"
    if error or response.status_code >= 400:
        if error in ("invalid_code", "invalid_grant", "access_denied"):
            raise AuthExpired(f"zoho: the grant was refused ({error})", provider=PROVIDER)
        raise Refused(f"zoho: the accounts server refused ({error or response.status_code}); check "
                      "CLINICBOT_ZOHO_CLIENT_ID/SECRET", provider=PROVIDER)
    token, lifetime = body.get("access_token"), body.get("expires_in", 3600)
    if not isinstance(token, str) or not token or not isinstance(lifetime, (int, float)) or lifetime <= 0:
        raise BadPayload("zoho: token answer without an access token or its lifetime", provider=PROVIDER)
    out: dict[str, Any] = {"access_token": token, "expires_at": clock() + float(lifetime), "dc": dc}
    if isinstance(body.get("refresh_token"), str):
        out["refresh_token"] = body["refresh_token"]
    return out


class ZohoTokens:
    """Hands out a valid access token, refreshing it (one at a time) at the account's data centre, and saves it."""

    def __init__(self, host: HostSettings, conn: ConnectionInfo, *, clock: Callable[[], float] = time.time) -> None:
        self._host = host
        self._creds: dict[str, Any] = dict(conn.credentials or {})
        self.dc = str(conn.config.get("dc") or self._creds.get("dc") or zoho_settings(host).zoho_default_dc)
        self._save: Callable[[dict[str, Any]], Awaitable[None]] | None = conn.save_credentials
        self._transport = conn.transport
        self._clock = clock
        self._lock = asyncio.Lock()
        self.refreshes = 0

    async def access_token(self, *, stale: str | None = None) -> str:
        async with self._lock:
            token = self._creds.get("access_token")
            fresh = float(self._creds.get("expires_at", 0)) - EXPIRY_MARGIN_SECONDS > self._clock()
            if isinstance(token, str) and fresh and token != stale:
                return token
            refresh = self._creds.get("refresh_token")
            if not isinstance(refresh, str) or not refresh:
                raise AuthExpired("zoho: no refresh token stored", provider=PROVIDER)
            new = await _token_call(self._host, self.dc, {"grant_type": "refresh_token", "refresh_token": refresh},
                                    self._transport, self._clock)
            self.refreshes += 1
            self._creds = {**self._creds, **new}
            if self._save is not None:
                await self._save(dict(self._creds))
            return str(self._creds["access_token"])


class ZohoAuth(RenewingAuth):
    """`Authorization: Zoho-oauthtoken <token>`, refreshed before expiry and once more on a 401."""

    def __init__(self, tokens: ZohoTokens) -> None:
        super().__init__(tokens.access_token, scheme="Zoho-oauthtoken", client="Zoho")
