"""Google's OAuth 2.0 endpoints for the fake (tests/adapters/google/fakes/google.py): the consent page (as a 302
straight back to the redirect URI, as if the user clicked Allow), /token for the
authorization_code grant with PKCE and for refresh_token, and /revoke.

Error bodies follow the OAuth 2.0 spec as Google sends them: {"error": ..., "error_description": ...};
invalid_grant is 400, a wrong client secret is 401 invalid_client.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

__all__ = ["AccessToken", "OAuthFake"]

ACCESS_TOKEN_SECONDS = 3599


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    method: str
    expires_at: datetime
    used: bool = False


@dataclass
class AccessToken:
    scope: str
    expires_at: datetime
    refresh_token: str | None


@dataclass
class RefreshToken:
    client_id: str
    scope: str
    revoked: bool = False


@dataclass
class OAuthFake:
    """State and handlers of the fake OAuth server; `now` is the fake's clock."""

    now: Callable[[], datetime]
    client_id: str = "clinicbot-test.apps.googleusercontent.com"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    #: What the simulated user answers on the consent page: "allow" or "deny".
    consent: str = "allow"
    codes: dict[str, AuthCode] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/o/oauth2/v2/auth", self.consent_page),
            web.post("/token", self.token),
            web.post("/revoke", self.revoke_endpoint),
        ]

    # --- helpers for tests ------------------------------------------------------------------
    def grant(self, scope: str = "https://www.googleapis.com/auth/calendar") -> dict[str, Any]:
        """Issue a token pair directly, as if the consent flow had run."""
        refresh = "1//" + secrets.token_urlsafe(32)
        self.refresh_tokens[refresh] = RefreshToken(self.client_id, scope)
        return {"refresh_token": refresh, **self._access(scope, refresh)}

    def revoke(self, refresh_token: str) -> None:
        """Revoke a refresh token and every access token minted from it (the user removed access)."""
        self.refresh_tokens[refresh_token].revoked = True
        for token in [t for t, a in self.access_tokens.items() if a.refresh_token == refresh_token]:
            del self.access_tokens[token]

    def expire_access_tokens(self) -> None:
        for token in self.access_tokens.values():
            token.expires_at = self.now() - timedelta(seconds=1)

    def check_bearer(self, header: str | None) -> AccessToken | None:
        if not header or not header.startswith("Bearer "):
            return None
        token = self.access_tokens.get(header.removeprefix("Bearer ").strip())
        if token is None or token.expires_at <= self.now():
            return None
        return token

    def _access(self, scope: str, refresh: str | None) -> dict[str, Any]:
        token = "ya29." + secrets.token_urlsafe(32)
        expires = self.now() + timedelta(seconds=ACCESS_TOKEN_SECONDS)
        self.access_tokens[token] = AccessToken(scope, expires, refresh)
        return {
            "access_token": token,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": scope,
            "token_type": "Bearer",
        }

    # --- handlers -------------------------------------------------------------------------------
    async def consent_page(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return web.Response(status=400, text="Error 401: invalid_client")
        redirect_uri = q.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            return web.Response(status=400, text="Error 400: redirect_uri_mismatch")
        if q.get("response_type") != "code" or not q.get("scope"):
            return web.Response(status=400, text="Error 400: invalid_request")
        method = q.get("code_challenge_method", "plain")
        if q.get("code_challenge") and method not in ("S256", "plain"):
            return web.Response(status=400, text="Error 400: invalid_request (code_challenge_method)")
        state = {"state": q["state"]} if "state" in q else {}
        if self.consent != "allow":
            raise web.HTTPFound(f"{redirect_uri}?{urlencode({'error': 'access_denied', **state})}")
        code = "4/" + secrets.token_urlsafe(24)
        self.codes[code] = AuthCode(
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            scope=q["scope"],
            challenge=q.get("code_challenge"),
            method=method,
            expires_at=self.now() + timedelta(minutes=10),
        )
        raise web.HTTPFound(f"{redirect_uri}?{urlencode({'code': code, 'scope': q['scope'], **state})}")

    async def token(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.token_requests.append({k: v for k, v in form.items() if k in ("grant_type", "client_id")})
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if client_id != self.client_id or client_secret != self.client_secret:
            return _oauth_error(401, "invalid_client", "Unauthorized")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._code_grant(form)
        if grant == "refresh_token":
            stored = self.refresh_tokens.get(form.get("refresh_token", ""))
            if stored is None or stored.revoked:
                return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            return web.json_response(self._access(stored.scope, form["refresh_token"]))
        return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")

    def _code_grant(self, form: dict[str, str]) -> web.Response:
        code = self.codes.get(form.get("code", ""))
        if code is None or code.used or code.expires_at <= self.now():
            return _oauth_error(400, "invalid_grant", "Malformed auth code.")
        if form.get("redirect_uri") != code.redirect_uri:
            return _oauth_error(400, "redirect_uri_mismatch", "Bad Request")
        if code.challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                return _oauth_error(400, "invalid_grant", "Missing code verifier.")
            if code.method == "S256":
                digest = hashlib.sha256(verifier.encode()).digest()
                expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            else:
                expected = verifier
            if not secrets.compare_digest(expected, code.challenge):
                return _oauth_error(400, "invalid_grant", "Invalid code verifier.")
        code.used = True
        refresh = "1//" + secrets.token_urlsafe(32)
        self.refresh_tokens[refresh] = RefreshToken(code.client_id, code.scope)
        return web.json_response({"refresh_token": refresh, **self._access(code.scope, refresh)})

    async def revoke_endpoint(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(request.query.get("token") or form.get("token") or "")
        if token in self.refresh_tokens and not self.refresh_tokens[token].revoked:
            self.revoke(token)
        elif token in self.access_tokens:
            del self.access_tokens[token]
        else:
            return _oauth_error(400, "invalid_token", "Token expired or revoked")
        return web.json_response({})


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)
