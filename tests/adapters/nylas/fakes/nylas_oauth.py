"""The fake Nylas's hosted OAuth: `GET /v3/connect/auth` redirects back with a code for the next
login, `POST /v3/connect/token` trades it (PKCE checked: the SDK's challenge, base64 of the hex
SHA-256, and RFC 7636's S256 are both accepted) with OAuth error bodies."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.adapters.nylas.fakes.nylas_store import Grant

__all__ = ["OAuthRoutes"]


class OAuthRoutes:
    """Mixed into NylasFake: the attributes below are its."""

    client_id: str
    api_key: str
    grants: dict[str, Grant]
    codes: dict[str, dict[str, Any]]
    next_login: tuple[str, str]

    def add_grant(self, email: str, provider: str = "google", *, calendars: int = 1) -> Grant:
        raise NotImplementedError

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        raise NotImplementedError

    async def connect_auth(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return web.json_response({"error": "invalid_client", "error_description": "unknown client_id"}, status=400)
        if q.get("response_type") != "code" or not q.get("redirect_uri"):
            return web.json_response({"error": "invalid_request", "error_description": "response_type and "
                                      "redirect_uri are required"}, status=400)
        if q.get("code_challenge") and q.get("code_challenge_method", "").lower() != "s256":
            return web.json_response({"error": "invalid_request", "error_description": "code_challenge_method "
                                      "must be s256"}, status=400)
        email, provider = self.next_login
        grant = next((g for g in self.grants.values() if g.email == email), None)
        if grant is None:
            grant = self.add_grant(email, provider)
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"grant": grant.id, "redirect_uri": q["redirect_uri"],
                            "challenge": q.get("code_challenge"), "used": False}
        grant.status = "valid"  # signing in again revives the same grant
        target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")})
        raise web.HTTPFound(target)

    async def connect_token(self, request: web.Request) -> web.Response:
        body = await self._json(request)

        def refuse(error: str, description: str) -> web.Response:
            return web.json_response({"error": error, "error_code": 400, "error_description": description,
                                      "error_uri": "https://developer.nylas.com/docs/api/errors"}, status=400)

        if body.get("client_id") != self.client_id:
            return refuse("invalid_client", "unknown client_id")
        secret = body.get("client_secret") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        if secret != self.api_key:
            return refuse("invalid_client", "client_secret (API key) is wrong")
        if body.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type", "only authorization_code is served by this fake")
        entry = self.codes.get(str(body.get("code")))
        if entry is None or entry["used"]:
            return refuse("invalid_grant", "code is unknown, expired or already used")
        entry["used"] = True
        if body.get("redirect_uri") != entry["redirect_uri"]:
            return refuse("invalid_grant", "redirect_uri does not match")
        if entry["challenge"]:
            verifier = str(body.get("code_verifier") or "")
            digest = hashlib.sha256(verifier.encode())
            sdk = base64.b64encode(digest.hexdigest().encode()).decode().rstrip("=")
            rfc = base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")
            if not verifier or entry["challenge"] not in (sdk, rfc):
                return refuse("invalid_grant", "code_verifier does not match the code_challenge")
        grant = self.grants[entry["grant"]]
        return web.json_response({"access_token": secrets.token_urlsafe(24), "grant_id": grant.id,
                                  "expires_in": 3600, "email": grant.email, "scope": "calendar",
                                  "token_type": "Bearer", "provider": grant.provider, "id_token": "x.y.z"})

