"""Connecting Calendly with its OAuth: the code flow, and refreshes that respect single-use refresh tokens.

Calendly's access tokens last two hours; each refresh answers a new access token AND a new refresh
token, and the old refresh token is spent (using it again is `invalid_grant`). So the new pair is
stored in one write, and refreshes of one connection are serialized by the core
(`ConnectionInfo.rotate_credentials`, see adapters.kit.oauth). A refresh answered `invalid_grant`
is AuthExpired: the connection shows "reconnect" and chat offers `connect calendly` again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from adapters.calendly.bookings import CalendlyBookings
from adapters.calendly.client import PROVIDER, CalendlyClient
from adapters.calendly.settings import calendly_settings
from adapters.kit.oauth import token_call
from sync.contract import BadPayload, Refused
from sync.contract.integration import Connected, HostSettings, OAuthStart

__all__ = ["CalendlyOAuth", "refresh", "token_document"]

_NOT_SET_UP = "Calendly sign-in is not set up: set CLINICBOT_CALENDLY_CLIENT_ID and CLINICBOT_CALENDLY_CLIENT_SECRET"


def token_document(answer: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """The credential document to store from a token answer (both tokens together, and when it expires)."""
    try:
        lifetime = float(answer.get("expires_in") or 7200)
    except (TypeError, ValueError):
        lifetime = 7200.0
    refresh_token = answer.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise BadPayload("calendly: the token answer has no refresh_token", provider=PROVIDER)
    return {"access_token": str(answer["access_token"]), "refresh_token": refresh_token,
            "expires_at": (now if now is not None else time.time()) + lifetime,
            "owner": str(answer.get("owner") or ""), "organization": str(answer.get("organization") or "")}


def _client(host: HostSettings) -> tuple[str, str, str]:
    cfg = calendly_settings(host)
    if not cfg.oauth_enabled:
        raise Refused(_NOT_SET_UP, provider=PROVIDER)
    return cfg.calendly_auth_url, str(cfg.calendly_client_id), str(cfg.calendly_client_secret)


async def refresh(host: HostSettings, current: Mapping[str, Any], transport: Any = None) -> dict[str, Any]:
    """Spend the stored refresh token for a new pair (invalid_grant: AuthExpired, reconnect)."""
    base, client_id, client_secret = _client(host)
    answer = await token_call(base, "/oauth/token", {
        "grant_type": "refresh_token", "refresh_token": str(current.get("refresh_token") or ""),
        "client_id": client_id, "client_secret": client_secret}, provider=PROVIDER, transport=transport)
    return token_document(answer)


class CalendlyOAuth:
    """Calendly's OAuth2 code flow (sync.contract.integration.OAuthFlow)."""

    async def begin(self, host: HostSettings, *, redirect_uri: str, options: Mapping[str, str],
                    transport: Any = None) -> OAuthStart:
        base, client_id, _ = _client(host)
        state = secrets.token_urlsafe(24)
        query = urlencode({"client_id": client_id, "response_type": "code", "redirect_uri": redirect_uri,
                           "state": state})
        return OAuthStart(f"{base}/oauth/authorize?{query}", state,
                          {"redirect_uri": redirect_uri, "routing_forms": options.get("routing_forms", "off")})

    async def finish(self, host: HostSettings, *, secret: dict[str, Any], query: Mapping[str, str],
                     transport: Any = None) -> Connected:
        code = query.get("code") or ""
        if not code:
            raise BadPayload(f"calendly: the callback carries no code ({query.get('error') or 'no error'})",
                             provider=PROVIDER)
        base, client_id, client_secret = _client(host)
        answer = await token_call(base, "/oauth/token", {
            "grant_type": "authorization_code", "code": code, "redirect_uri": str(secret.get("redirect_uri") or ""),
            "client_id": client_id, "client_secret": client_secret}, provider=PROVIDER, transport=transport)
        creds = token_document(answer)
        # The token is minutes old: the members are read with it as it is (no refresh to serialize yet).
        source = CalendlyBookings(CalendlyClient(calendly_settings(host).calendly_api_url, creds["access_token"],
                                                 transport=transport))
        try:
            calendars = await source.staff()
        finally:
            await source.aclose()
        config = {"routing_forms": "on"} if secret.get("routing_forms") == "on" else {}
        return Connected(account=creds["owner"] or "Calendly account", config=config, credentials=creds,
                         calendars=calendars)
