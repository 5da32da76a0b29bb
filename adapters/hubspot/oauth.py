"""Connecting HubSpot with its OAuth: the code flow at app.hubspot.com, tokens at api.hubapi.com.

`GET https://app.hubspot.com/oauth/authorize?client_id&redirect_uri&scope&state`, then
`POST /oauth/v1/token` (form: grant_type authorization_code or refresh_token, client_id,
client_secret, redirect_uri, code | refresh_token) -> {access_token, refresh_token, expires_in}.
Access tokens last `expires_in` seconds (30 minutes); HubSpot's refresh token does not rotate but a
refresh answer may carry one, which is then stored. HubSpot says a 401 is not a reliable "refresh
now" signal, so the expiry is tracked and refreshed before it (adapters.kit.oauth). At connect the
token's account (`GET /oauth/v1/access-tokens/<token>`: hub_id, user) names the connection, the
visit-key property is made, and the owners become the booking calendars.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from adapters.hubspot.bookings import HubSpotMeetings
from adapters.hubspot.client import PROVIDER, HubSpotClient
from adapters.hubspot.forms import FORM_OPTIONS
from adapters.hubspot.meetings import ensure_key_property
from adapters.hubspot.settings import SCOPES, hubspot_settings
from adapters.kit.oauth import token_call
from sync.contract import BadPayload, Refused
from sync.contract.integration import Connected, HostSettings, OAuthStart

__all__ = ["HubSpotOAuth", "refresh", "token_document"]

_NOT_SET_UP = "HubSpot sign-in is not set up: set CLINICBOT_HUBSPOT_CLIENT_ID and CLINICBOT_HUBSPOT_CLIENT_SECRET"


def token_document(answer: Mapping[str, Any], current: Mapping[str, Any] | None = None,
                   now: float | None = None) -> dict[str, Any]:
    """The credential document to store from a token answer (the refresh token kept when none is sent)."""
    try:
        lifetime = float(answer.get("expires_in") or 1800)
    except (TypeError, ValueError):
        lifetime = 1800.0
    refresh_token = answer.get("refresh_token") or (current or {}).get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise BadPayload("hubspot: the token answer has no refresh_token", provider=PROVIDER)
    return {"access_token": str(answer["access_token"]), "refresh_token": refresh_token,
            "expires_at": (now if now is not None else time.time()) + lifetime}


def _client(host: HostSettings) -> tuple[str, str, str]:
    cfg = hubspot_settings(host)
    if not cfg.oauth_enabled:
        raise Refused(_NOT_SET_UP, provider=PROVIDER)
    return cfg.hubspot_api_url, str(cfg.hubspot_client_id), str(cfg.hubspot_client_secret)


async def refresh(host: HostSettings, current: Mapping[str, Any], transport: Any = None) -> dict[str, Any]:
    """A new access token for the stored refresh token (invalid_grant: AuthExpired, reconnect)."""
    base, client_id, client_secret = _client(host)
    answer = await token_call(base, "/oauth/v1/token", {
        "grant_type": "refresh_token", "refresh_token": str(current.get("refresh_token") or ""),
        "client_id": client_id, "client_secret": client_secret}, provider=PROVIDER, transport=transport)
    return token_document(answer, current)


class HubSpotOAuth:
    """HubSpot's OAuth2 code flow (sync.contract.integration.OAuthFlow)."""

    async def begin(self, host: HostSettings, *, redirect_uri: str, options: Mapping[str, str],
                    transport: Any = None) -> OAuthStart:
        _client(host)
        cfg = hubspot_settings(host)
        state = secrets.token_urlsafe(24)
        query = urlencode({"client_id": cfg.hubspot_client_id, "redirect_uri": redirect_uri,
                           "scope": " ".join(SCOPES), "state": state})
        # The form options given at connect (`--forms`...) come back with the callback, into the config.
        chosen = {k: v for k, v in options.items() if k in FORM_OPTIONS and v}
        return OAuthStart(f"{cfg.hubspot_auth_url}/oauth/authorize?{query}", state,
                          {"redirect_uri": redirect_uri, "options": chosen})

    async def finish(self, host: HostSettings, *, secret: dict[str, Any], query: Mapping[str, str],
                     transport: Any = None) -> Connected:
        code = query.get("code") or ""
        if not code:
            raise BadPayload(f"hubspot: the callback carries no code ({query.get('error') or 'no error'})",
                             provider=PROVIDER)
        base, client_id, client_secret = _client(host)
        answer = await token_call(base, "/oauth/v1/token", {
            "grant_type": "authorization_code", "code": code, "redirect_uri": str(secret.get("redirect_uri") or ""),
            "client_id": client_id, "client_secret": client_secret}, provider=PROVIDER, transport=transport)
        creds = token_document(answer)
        client = HubSpotClient(base, creds["access_token"], transport=transport)
        try:
            info = await client.request("GET", f"/oauth/v1/access-tokens/{creds['access_token']}")
            hub = str(info.get("hub_id") or "")
            await ensure_key_property(client)
            calendars = await HubSpotMeetings(client, portal_id=hub).staff()
        finally:
            await client.aclose()
        account = str(info.get("hub_domain") or info.get("user") or f"HubSpot account {hub}")
        given = secret.get("options")
        chosen: dict[str, Any] = given if isinstance(given, dict) else {}
        config = {"portal_id": hub, **{k: str(v) for k, v in chosen.items() if k in FORM_OPTIONS}}
        return Connected(account=account, config=config, credentials=creds, calendars=calendars)
