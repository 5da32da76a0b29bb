"""Connecting a Square seller account: OAuth2 code flow, token refresh, and the staff it finds.

Square access tokens last 30 days; the code flow's refresh gives a new access token (and the same
refresh token), so a connection refreshes a day before expiry and stores the new document encrypted
through `save_credentials`. The account is named by its merchant id; each bookable team member
becomes one booking calendar, whose practitioner comes from the staff mapping.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from adapters.kit.http import make_client
from adapters.square.client import PROVIDER, map_square_error
from adapters.square.settings import square_settings
from sync.contract import AuthExpired, BadPayload, CalendarInfo, ConnectionInfo, Refused, Unavailable
from sync.contract.integration import Connected, HostSettings, OAuthStart

__all__ = ["SCOPES", "SquareOAuth", "fresh_token", "redeem"]

SCOPES = ("APPOINTMENTS_READ", "APPOINTMENTS_WRITE", "APPOINTMENTS_ALL_READ", "APPOINTMENTS_ALL_WRITE",
          "CUSTOMERS_READ", "ITEMS_READ")
#: Refresh this long before the access token expires.
REFRESH_MARGIN = timedelta(days=1)


async def redeem(host: HostSettings, grant: dict[str, str], transport: Any = None) -> dict[str, Any]:
    """POST /oauth2/token with the app's client id and secret; the credential document to store."""
    cfg = square_settings(host)
    if not cfg.enabled:
        raise Refused("Square is not set up: set CLINICBOT_SQUARE_CLIENT_ID and CLINICBOT_SQUARE_CLIENT_SECRET",
                      provider=PROVIDER)
    body = {"client_id": cfg.square_client_id, "client_secret": cfg.square_client_secret, **grant}
    async with make_client(cfg.square_oauth_url, transport=transport) as http:
        try:
            response = await http.post("/oauth2/token", json=body)
        except httpx.HTTPError as exc:
            raise Unavailable(f"square: token request failed ({type(exc).__name__})", provider=PROVIDER) from exc
    if response.status_code >= 400:
        error = map_square_error(response)
        raise AuthExpired(str(error), provider=PROVIDER) if response.status_code in (400, 401) else error
    data = response.json()
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise BadPayload("square: the token answer has no access_token", provider=PROVIDER)
    return {"access_token": token, "refresh_token": data.get("refresh_token") or grant.get("refresh_token"),
            "expires_at": data.get("expires_at"), "merchant_id": data.get("merchant_id")}


async def fresh_token(conn: ConnectionInfo, host: HostSettings) -> str:
    """The connection's access token, refreshed (and saved) when it expires within a day."""
    creds = dict(conn.credentials or {})
    #: An access token given to the CLI arrives as the connection's password.
    token = str(creds.get("access_token") or creds.get("password") or "")
    expires = creds.get("expires_at")
    due = False
    if isinstance(expires, str) and expires:
        try:
            due = datetime.fromisoformat(expires.replace("Z", "+00:00")) - REFRESH_MARGIN <= datetime.now(UTC)
        except ValueError:
            due = True
    if token and not due:
        return token
    refresh = creds.get("refresh_token")
    if not refresh:
        if token:
            return token
        raise AuthExpired("square: the connection has no token; reconnect it", provider=PROVIDER)
    renewed = await redeem(host, {"grant_type": "refresh_token", "refresh_token": str(refresh)},
                          transport=conn.transport)
    conn.credentials = {**creds, **renewed}
    if conn.save_credentials is not None:
        await conn.save_credentials(conn.credentials)
    return str(renewed["access_token"])


class SquareOAuth:
    """Square's OAuth2 code flow (sync.contract.integration.OAuthFlow).

    `discover` lists the staff of a connection; the package passes its own in, since listing staff
    reads through the token refresh kept here."""

    def __init__(self, discover: Callable[[ConnectionInfo, HostSettings], Awaitable[list[CalendarInfo]]]) -> None:
        self._discover = discover

    async def begin(self, host: HostSettings, *, redirect_uri: str, options: Mapping[str, str],
                    transport: Any = None) -> OAuthStart:
        cfg = square_settings(host)
        if not cfg.enabled:
            raise Refused("Square is not set up: set CLINICBOT_SQUARE_CLIENT_ID and CLINICBOT_SQUARE_CLIENT_SECRET",
                          provider=PROVIDER)
        state = secrets.token_urlsafe(24)
        query = urlencode({"client_id": cfg.square_client_id, "scope": " ".join(SCOPES), "session": "false",
                           "state": state, "redirect_uri": redirect_uri})
        return OAuthStart(f"{cfg.square_oauth_url}/oauth2/authorize?{query}", state, {"redirect_uri": redirect_uri})

    async def finish(self, host: HostSettings, *, secret: dict[str, Any], query: Mapping[str, str],
                     transport: Any = None) -> Connected:
        code = query.get("code") or ""
        if not code:
            raise BadPayload(f"square: the callback carries no code ({query.get('error') or 'no error'})",
                             provider=PROVIDER)
        creds = await redeem(host, {"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": str(secret.get("redirect_uri") or "")}, transport=transport)
        config: dict[str, Any] = {}
        calendars = await self._discover(ConnectionInfo(PROVIDER, "", config, creds, transport=transport), host)
        return Connected(account=str(creds.get("merchant_id") or "Square seller"), config=config,
                         credentials=creds, calendars=calendars)
