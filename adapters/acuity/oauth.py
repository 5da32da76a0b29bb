"""Connecting Acuity with its OAuth2 code flow, beside the user id + API key that stays.

`/oauth2/authorize?response_type=code&scope=api-v1` then `POST /oauth2/token` (form: code,
redirect_uri, client id and secret) gives a Bearer token. Acuity's OAuth has no refresh grant: a
token Acuity stops accepting is AuthExpired, and chat offers `connect acuity` again. Webhooks made
with an OAuth token are signed with the OAuth client secret (inferred: Acuity documents the API key
for webhooks made with Basic auth); a wrong guess only means 401s, and the poll keeps bookings current.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from adapters.acuity.bookings import AcuityBookings
from adapters.acuity.client import PROVIDER, AcuityClient
from adapters.acuity.settings import AcuitySettings, acuity_settings
from adapters.kit.oauth import token_call
from sync.contract import BadPayload, Refused
from sync.contract.integration import Connected, HostSettings, OAuthStart

__all__ = ["SCOPE", "AcuityOAuth", "bearer"]

SCOPE = "api-v1"
_NOT_SET_UP = "Acuity sign-in is not set up: set CLINICBOT_ACUITY_CLIENT_ID and CLINICBOT_ACUITY_CLIENT_SECRET"


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def bearer(token: str) -> httpx.Auth:
    """Bearer auth with an Acuity OAuth token."""
    return _Bearer(token)


def _app(host: HostSettings) -> AcuitySettings:
    cfg = acuity_settings(host)
    if not cfg.oauth_enabled:
        raise Refused(_NOT_SET_UP, provider=PROVIDER)
    return cfg


class AcuityOAuth:
    """Acuity's OAuth2 code flow (sync.contract.integration.OAuthFlow)."""

    async def begin(self, host: HostSettings, *, redirect_uri: str, options: Mapping[str, str],
                    transport: Any = None) -> OAuthStart:
        cfg = _app(host)
        state = secrets.token_urlsafe(24)
        query = urlencode({"response_type": "code", "scope": SCOPE, "client_id": cfg.acuity_client_id,
                           "redirect_uri": redirect_uri, "state": state})
        return OAuthStart(f"{cfg.acuity_auth_url}/oauth2/authorize?{query}", state, {"redirect_uri": redirect_uri})

    async def finish(self, host: HostSettings, *, secret: dict[str, Any], query: Mapping[str, str],
                     transport: Any = None) -> Connected:
        code = query.get("code") or ""
        if not code:
            raise BadPayload(f"acuity: the callback carries no code ({query.get('error') or 'no error'})",
                             provider=PROVIDER)
        cfg = _app(host)
        answer = await token_call(cfg.acuity_auth_url, "/oauth2/token", {
            "grant_type": "authorization_code", "code": code, "redirect_uri": str(secret.get("redirect_uri") or ""),
            "client_id": str(cfg.acuity_client_id), "client_secret": str(cfg.acuity_client_secret)},
            provider=PROVIDER, transport=transport)
        creds = {"access_token": str(answer["access_token"])}
        source = AcuityBookings(AcuityClient(cfg.acuity_api_url, bearer(creds["access_token"]),
                                             rate=cfg.acuity_requests_per_second, transport=transport))
        try:
            calendars = await source.staff()
        finally:
            await source.aclose()
        return Connected(account="Acuity account", config={"auth": "oauth"}, credentials=creds, calendars=calendars)
