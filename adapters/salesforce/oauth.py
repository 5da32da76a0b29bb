"""Connecting Salesforce with its OAuth (web server flow) at login.salesforce.com or test.salesforce.com.

`GET <login>/services/oauth2/authorize?response_type=code&client_id&redirect_uri&scope&state`, then
`POST <login>/services/oauth2/token` -> {access_token, refresh_token, instance_url, id, issued_at}.
The org's API lives at `instance_url` (from the token answer, stored with the tokens; it may change
at a refresh, which then moves the connection with it). The answer has no expiry: a session lasts
the org's session timeout (two hours by default), so the token is refreshed before two hours and
whenever the API answers 401 INVALID_SESSION_ID. A sandbox org signs in at test.salesforce.com:
`connect salesforce` offers `--environment sandbox`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from adapters.kit.oauth import token_call
from adapters.salesforce.bookings import SalesforceEvents
from adapters.salesforce.client import PROVIDER, SalesforceClient
from adapters.salesforce.settings import salesforce_settings
from sync.contract import BadPayload, Refused
from sync.contract.integration import Connected, HostSettings, OAuthStart

__all__ = ["ENVIRONMENTS", "SESSION_SECONDS", "SalesforceOAuth", "refresh", "token_document"]

_NOT_SET_UP = ("Salesforce sign-in is not set up: set CLINICBOT_SALESFORCE_CLIENT_ID and "
               "CLINICBOT_SALESFORCE_CLIENT_SECRET (a connected app's consumer key and secret)")
ENVIRONMENTS = ("production", "sandbox")
#: Salesforce's default session timeout; its token answer carries no expiry.
SESSION_SECONDS = 7200.0


def _instance(value: Any, host: HostSettings) -> str:
    url = str(value or "").rstrip("/")
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback and host.allow_private_urls):
        raise BadPayload("salesforce: the token answer's instance_url is not an https URL", provider=PROVIDER)
    return url


def token_document(answer: Mapping[str, Any], host: HostSettings, login_url: str,
                   current: Mapping[str, Any] | None = None, now: float | None = None) -> dict[str, Any]:
    """The credential document from a token answer: tokens, the instance URL, the login host, the expiry."""
    refresh_token = answer.get("refresh_token") or (current or {}).get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise BadPayload("salesforce: no refresh_token (the connected app needs the refresh_token scope)",
                         provider=PROVIDER)
    return {"access_token": str(answer["access_token"]), "refresh_token": refresh_token,
            "instance_url": _instance(answer.get("instance_url") or (current or {}).get("instance_url"), host),
            "login_url": login_url, "identity": str(answer.get("id") or (current or {}).get("identity") or ""),
            "expires_at": (now if now is not None else time.time()) + SESSION_SECONDS}


def _app(host: HostSettings) -> tuple[str, str]:
    cfg = salesforce_settings(host)
    if not cfg.oauth_enabled:
        raise Refused(_NOT_SET_UP, provider=PROVIDER)
    return str(cfg.salesforce_client_id), str(cfg.salesforce_client_secret)


def _login(host: HostSettings, environment: str) -> str:
    cfg = salesforce_settings(host)
    return cfg.salesforce_sandbox_url if environment == "sandbox" else cfg.salesforce_login_url


async def refresh(host: HostSettings, current: Mapping[str, Any], transport: Any = None) -> dict[str, Any]:
    """A new session for the stored refresh token, at the login host it was made at."""
    client_id, client_secret = _app(host)
    login = str(current.get("login_url") or salesforce_settings(host).salesforce_login_url)
    answer = await token_call(login, "/services/oauth2/token", {
        "grant_type": "refresh_token", "refresh_token": str(current.get("refresh_token") or ""),
        "client_id": client_id, "client_secret": client_secret}, provider=PROVIDER, transport=transport)
    return token_document(answer, host, login, current)


class SalesforceOAuth:
    """Salesforce's OAuth2 web server flow (sync.contract.integration.OAuthFlow)."""

    async def begin(self, host: HostSettings, *, redirect_uri: str, options: Mapping[str, str],
                    transport: Any = None) -> OAuthStart:
        client_id, _ = _app(host)
        environment = options.get("environment") or "production"
        if environment not in ENVIRONMENTS:
            raise Refused(f"salesforce: the environment is production or sandbox, not {environment!r}",
                          provider=PROVIDER)
        state = secrets.token_urlsafe(24)
        query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                           "scope": "api refresh_token", "state": state})
        return OAuthStart(f"{_login(host, environment)}/services/oauth2/authorize?{query}", state,
                          {"redirect_uri": redirect_uri, "environment": environment})

    async def finish(self, host: HostSettings, *, secret: dict[str, Any], query: Mapping[str, str],
                     transport: Any = None) -> Connected:
        code = query.get("code") or ""
        if not code:
            raise BadPayload(f"salesforce: the callback carries no code ({query.get('error') or 'no error'})",
                             provider=PROVIDER)
        client_id, client_secret = _app(host)
        login = _login(host, str(secret.get("environment") or "production"))
        answer = await token_call(login, "/services/oauth2/token", {
            "grant_type": "authorization_code", "code": code, "redirect_uri": str(secret.get("redirect_uri") or ""),
            "client_id": client_id, "client_secret": client_secret}, provider=PROVIDER, transport=transport)
        creds = token_document(answer, host, login)
        cfg = salesforce_settings(host)
        client = SalesforceClient(creds["instance_url"], cfg.salesforce_api_version, creds["access_token"],
                                  transport=transport)
        try:
            calendars = await SalesforceEvents(client, cfg.salesforce_external_id_field).staff()
        finally:
            await client.aclose()
        account = urlsplit(creds["instance_url"]).hostname or "Salesforce org"
        return Connected(account=account, config={"instance_url": creds["instance_url"]}, credentials=creds,
                         calendars=calendars)
