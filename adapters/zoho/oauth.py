"""Zoho's OAuth round trip: consent at the data centre's accounts server, then the account's calendars."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from adapters.zoho.auth import PROVIDER, SCOPES, _client, _token_call, data_centre
from adapters.zoho.discovery import discover
from adapters.zoho.settings import zoho_settings
from sync.contract import BadPayload, ConnectionInfo, Refused
from sync.contract.integration import Connected, HostSettings, OAuthStart

__all__ = ["ZohoOAuth"]


class ZohoOAuth:
    """Zoho's OAuth2 flow (sync.contract.integration.OAuthFlow)."""

    async def begin(self, host: HostSettings, *, redirect_uri: str, options: Mapping[str, str],
                    transport: Any = None) -> OAuthStart:
        client_id, _ = _client(host)
        own = zoho_settings(host)
        state = secrets.token_urlsafe(32)
        params = {"client_id": client_id, "response_type": "code", "scope": ",".join(SCOPES),
                  "access_type": "offline", "prompt": "consent", "redirect_uri": redirect_uri, "state": state}
        url = f"{own.accounts(own.zoho_default_dc)}/oauth/v2/auth?{urlencode(params)}"
        return OAuthStart(url, state, {"redirect_uri": redirect_uri})

    async def finish(self, host: HostSettings, *, secret: dict[str, Any], query: Mapping[str, str],
                     transport: Any = None) -> Connected:
        code = query.get("code") or ""
        if not code:
            raise BadPayload(f"zoho: the callback carries no code ({query.get('error', 'no error given')})",
                             provider=PROVIDER)
        dc = data_centre(query.get("location"), query.get("accounts-server"), host)
        creds = await _token_call(host, dc, {"grant_type": "authorization_code", "code": code,
                                             "redirect_uri": str(secret.get("redirect_uri") or "")},
                                  transport, time.time)
        if "refresh_token" not in creds:
            raise Refused("zoho: no refresh token granted; remove clinicbot under Zoho's connected apps and "
                          "connect again", provider=PROVIDER)
        config = {"dc": dc}
        calendars = await discover(ConnectionInfo(PROVIDER, "", config, creds, transport=transport), host)
        default = next((c for c in calendars if c.primary), calendars[0] if calendars else None)
        account = str((default.extra or {}).get("owner") or "") if default else ""
        return Connected(account=account or f"zoho ({dc})", config=config, credentials=creds, calendars=calendars)
