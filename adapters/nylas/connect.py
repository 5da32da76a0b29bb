"""Connecting a Nylas grant: hosted OAuth with PKCE, or a grant the practice already has.

Hosted OAuth: `GET /v3/connect/auth` (response_type=code, PKCE `s256`, a random state), then the
callback's code is traded at `POST /v3/connect/token` (the API key as client secret, with the
verifier) for a grant id. clinicbot then works with the application's API key on that grant, so
the credential it keeps is only the grant id: no refresh token to lose. The PKCE challenge is made
as Nylas's own SDK makes it (base64 of the hex SHA-256 of the verifier, unpadded), which is what
Nylas checks.

With an existing grant (`clinicbot connection add nylas --username <grant id>`), the grant is read
first: one whose `grant_status` is `invalid` is refused with the reconnect advice.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from adapters.nylas.client import PROVIDER, NylasClient
from adapters.nylas.discovery import check_grant, discover
from adapters.nylas.settings import nylas_settings
from sync.contract import BadPayload, ConnectionInfo, Refused
from sync.contract.integration import Connected, HostSettings, OAuthStart

__all__ = ["NylasOAuth", "check_grant", "pkce_pair"]

SETUP = "set CLINICBOT_NYLAS_CLIENT_ID and CLINICBOT_NYLAS_API_KEY"


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its challenge as Nylas computes it: base64(hex(sha256(verifier))) without padding."""
    verifier = secrets.token_urlsafe(64)[:96]
    hexdigest = hashlib.sha256(verifier.encode()).hexdigest()
    return verifier, base64.b64encode(hexdigest.encode()).decode().rstrip("=")


def _application(host: HostSettings) -> tuple[str, str]:
    own = nylas_settings(host)
    if not own.nylas_client_id or not own.nylas_api_key:
        raise Refused(f"Nylas is not configured: {SETUP}", provider=PROVIDER)
    return own.nylas_client_id, own.nylas_api_key


class NylasOAuth:
    """Nylas's hosted OAuth (sync.contract.integration.OAuthFlow)."""

    async def begin(
        self, host: HostSettings, *, redirect_uri: str, options: Mapping[str, str], transport: Any = None
    ) -> OAuthStart:
        client_id, _ = _application(host)
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(32)
        params = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code",
                  "access_type": "online", "state": state, "code_challenge": challenge,
                  "code_challenge_method": "s256"}
        provider = nylas_settings(host).nylas_provider
        if provider:
            params["provider"] = provider
        if options.get("login_hint"):
            params["login_hint"] = options["login_hint"]
        url = f"{nylas_settings(host).nylas_api_url}/v3/connect/auth?{urlencode(params)}"
        return OAuthStart(url, state, {"code_verifier": verifier, "redirect_uri": redirect_uri})

    async def finish(
        self, host: HostSettings, *, secret: dict[str, Any], query: Mapping[str, str], transport: Any = None
    ) -> Connected:
        if query.get("error"):
            said = " ".join(str(query.get(k) or "") for k in ("error", "error_description", "error_code"))
            raise Refused(f"nylas: the sign-in was not completed ({' '.join(said.split())[:200]})", provider=PROVIDER)
        code = query.get("code") or ""
        if not code or not secret.get("code_verifier"):
            raise BadPayload("nylas: the callback carries no code", provider=PROVIDER)
        client_id, key = _application(host)
        api = NylasClient(nylas_settings(host).nylas_api_url, key, transport=transport)
        try:
            token = await _redeem(api, {"client_id": client_id, "client_secret": key,
                                        "grant_type": "authorization_code", "code": code,
                                        "redirect_uri": str(secret.get("redirect_uri") or ""),
                                        "code_verifier": str(secret["code_verifier"])})
        finally:
            await api.aclose()
        grant = token.get("grant_id")
        if not isinstance(grant, str) or not grant:
            raise BadPayload("nylas: the token answer carries no grant_id", provider=PROVIDER)
        config = {"grant_id": grant, "email": str(token.get("email") or ""),
                  "provider": str(token.get("provider") or "")}
        creds = {"grant_id": grant}
        calendars = await discover(ConnectionInfo(PROVIDER, "", config, creds, transport=transport), host)
        return Connected(account=str(token.get("email") or grant), config=config, credentials=creds,
                         calendars=calendars)


async def _redeem(api: NylasClient, form: dict[str, str]) -> dict[str, Any]:
    """POST /v3/connect/token; its OAuth error body ({error, error_description}) in words."""
    try:
        return await api.request("POST", "/v3/connect/token", json=form)
    except Refused as exc:
        raise Refused(f"nylas: the sign-in code was refused (expired or used already); connect again ({exc})",
                      provider=PROVIDER) from None
