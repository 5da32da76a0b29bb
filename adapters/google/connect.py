"""Connecting a Google account: the OAuth2 round trip with PKCE, as plain data for the core.

`GoogleOAuth.begin` builds the consent URL and says what to keep (the PKCE verifier, the redirect
and the options) until the callback; `finish` trades the code, names the account after its primary
calendar and returns the calendars discovery found. The core owns the single-use state and writes
the Connection and its calendars once.

`--attachments on` adds Drive's read scope. Whether Drive may be read is not kept in the
configuration: the grant's own scope list says it (the person may untick Drive on Google's consent
page), and signing in again with include_granted_scopes keeps what was granted before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.google.auth import DRIVE_SCOPE, authorization_request, exchange_code
from adapters.google.discovery import discover
from adapters.google.provider import SEND_UPDATES
from sync.contract import BadPayload, CalendarInfo, ConnectionInfo, Refused
from sync.contract.integration import Connected, HostSettings, OAuthStart

__all__ = ["GoogleOAuth"]


#: `--attachments on`: also ask to read the Drive files attached to events (adapters.google.drive).
ATTACHMENTS = ("off", "on")


class GoogleOAuth:
    """Google's OAuth2 flow (sync.contract.integration.OAuthFlow). Options: send_updates (none|all|externalOnly),
    attachments (off|on: adds the Drive read scope)."""

    async def begin(
        self, host: HostSettings, *, redirect_uri: str, options: Mapping[str, str], transport: Any = None
    ) -> OAuthStart:
        send_updates = options.get("send_updates") or "none"
        if send_updates not in SEND_UPDATES:
            raise Refused(f"send_updates must be one of {', '.join(SEND_UPDATES)}", provider="google")
        attachments = options.get("attachments") or "off"
        if attachments not in ATTACHMENTS:
            raise Refused("attachments must be on or off", provider="google")
        request = authorization_request(host, redirect=redirect_uri, login_hint=options.get("login_hint"),
                                        extra_scopes=(DRIVE_SCOPE,) if attachments == "on" else ())
        secret = {"code_verifier": request.code_verifier, "redirect_uri": request.redirect_uri,
                  "send_updates": send_updates, "attachments": attachments}
        return OAuthStart(request.url, request.state, secret)

    async def finish(
        self, host: HostSettings, *, secret: dict[str, Any], query: Mapping[str, str], transport: Any = None
    ) -> Connected:
        code = query.get("code") or ""
        if not code or not secret.get("code_verifier"):
            raise BadPayload("google: the callback carries no code", provider="google")
        creds = await exchange_code(host, code, str(secret["code_verifier"]), str(secret["redirect_uri"]),
                                    transport=transport)
        config = {"send_updates": str(secret.get("send_updates") or "none")}
        calendars = await discover(ConnectionInfo("google", "", config, creds, transport=transport), host)
        return Connected(account=_account(calendars), config=config, credentials=creds, calendars=calendars)


def _account(calendars: list[CalendarInfo]) -> str:
    """The account's name: its primary calendar's id (the Google address)."""
    primary = next((c for c in calendars if (c.extra or {}).get("primary")), None)
    return primary.remote_id if primary else ""
