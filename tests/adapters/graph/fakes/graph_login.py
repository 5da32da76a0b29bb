"""A loopback fake of the Microsoft identity platform endpoints that MSAL uses.

Served beside the fake Graph (tests/adapters/graph/fakes/graph.py). It implements:
- tenant discovery: GET /{tenant}/v2.0/.well-known/openid-configuration
- instance discovery: GET /common/discovery/instance (aliases for the token cache)
- GET /{tenant}/oauth2/v2.0/authorize: signs in `login_hint` (or the fake's `signed_in` user) and
  redirects to redirect_uri with code and state, as the real page does after the user consents
- POST /{tenant}/oauth2/v2.0/token: authorization_code (PKCE S256 checked), refresh_token,
  client_credentials (only for a tenant id, only with /.default scopes, roles only after admin consent)

Errors use the documented shape: {"error", "error_description" ("AADSTS...: ..."), "error_codes",
"timestamp", "trace_id", "correlation_id"}. MSAL keeps the real authority URL
(https://login.microsoftonline.com); `LoginFake.http_client()` is a requests.Session whose transport
adapter sends those URLs here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from aiohttp import web
from requests.adapters import HTTPAdapter

__all__ = ["PERSONAL_TENANT", "AccessToken", "LoginFake", "RoutingAdapter", "User"]

#: The tenant id of Microsoft personal accounts (Outlook.com), documented by Microsoft.
PERSONAL_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


@dataclass
class User:
    upn: str
    oid: str = field(default_factory=lambda: str(uuid.uuid4()))
    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    name: str = "Test User"

    @property
    def personal(self) -> bool:
        return self.tenant_id == PERSONAL_TENANT


@dataclass
class AccessToken:
    token: str
    client_id: str
    tenant_id: str
    expires_at: float
    user: User | None = None  # None for an application (client credentials) token
    scopes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    method: str
    scope: str
    user: User
    nonce: str | None
    expires_at: float


@dataclass
class _Refresh:
    client_id: str
    user: User
    scope: str
    revoked: bool = False


class LoginFake:
    """State and handlers of the fake authority; mounted into the Graph fake's aiohttp app."""

    def __init__(self, public_url: str = "https://login.microsoftonline.com") -> None:
        #: The authority URL MSAL believes it talks to; endpoints in discovery documents use it.
        self.public_url = public_url.rstrip("/")
        self.apps: dict[str, str | None] = {}  # client_id -> secret (None: public client)
        self.users: dict[str, User] = {}
        self.consented_tenants: set[str] = set()
        self.tokens: dict[str, AccessToken] = {}
        self.codes: dict[str, _Code] = {}
        self.refresh_tokens: dict[str, _Refresh] = {}
        self.signed_in: str | None = None
        self.token_lifetime = 3599.0
        self.requests: list[tuple[str, str]] = []
        #: Application roles consented beyond Calendars.ReadWrite, per tenant (Schedule.ReadWrite.All).
        self.extra_roles: dict[str, tuple[str, ...]] = {}

    # --- set-up helpers used by tests ----------------------------------------------------------
    def register_app(self, client_id: str, secret: str | None = None) -> None:
        self.apps[client_id] = secret

    def add_user(self, upn: str, *, tenant_id: str | None = None, personal: bool = False) -> User:
        user = User(upn=upn, tenant_id=PERSONAL_TENANT if personal else (tenant_id or str(uuid.uuid4())))
        self.users[upn.lower()] = user
        return user

    def grant_admin_consent(self, tenant_id: str, roles: tuple[str, ...] = ()) -> None:
        """Admin consent for the tenant: Calendars.ReadWrite, and any further application roles."""
        self.consented_tenants.add(tenant_id)
        self.extra_roles[tenant_id] = tuple(dict.fromkeys((*self.extra_roles.get(tenant_id, ()), *roles)))

    def revoke_refresh_tokens(self, upn: str | None = None) -> None:
        for rt in self.refresh_tokens.values():
            if upn is None or rt.user.upn.lower() == upn.lower():
                rt.revoked = True

    def expire_access_tokens(self) -> None:
        for tok in self.tokens.values():
            tok.expires_at = 0.0

    def issue_app_token(self, client_id: str, tenant_id: str) -> str:
        """An application token as client credentials would return it (for fake-side tests)."""
        return self._new_access(client_id, tenant_id, None, (), self._roles(tenant_id)).token

    def issue_user_token(self, client_id: str, upn: str) -> str:
        user = self.users[upn.lower()]
        return self._new_access(client_id, user.tenant_id, user, ("Calendars.ReadWrite",), ()).token

    def lookup(self, bearer: str) -> AccessToken | None:
        """The live access token for a bearer value, or None (unknown or expired)."""
        tok = self.tokens.get(bearer)
        if tok is None or tok.expires_at < time.time():
            return None
        return tok

    def http_client(self, target: str) -> requests.Session:
        """A requests.Session for MSAL that routes the public authority URL to `target`."""
        session = requests.Session()
        session.mount(self.public_url, RoutingAdapter(self.public_url, target))
        return session

    def approve(self, auth_uri: str, upn: str) -> dict[str, str]:
        """What the authorize page hands back after `upn` signs in and consents: code and state."""
        params = dict(parse_qsl(urlsplit(auth_uri).query))
        code = self._new_code(params, self.users[upn.lower()])
        return {
            "code": code,
            "state": params.get("state", ""),
            "client_info": _client_info(self.users[upn.lower()]),
        }

    # --- routes ---------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration)
        app.router.add_get("/common/discovery/instance", self.instance_discovery)
        app.router.add_get("/{tenant}/oauth2/v2.0/authorize", self.authorize)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self.token)

    async def openid_configuration(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        self.requests.append(("GET", request.path))
        issuer_tenant = "{tenantid}" if tenant in ("common", "organizations", "consumers") else tenant
        base = f"{self.public_url}/{tenant}"
        return web.json_response(
            {
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{self.public_url}/{issuer_tenant}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "tenant_region_scope": None,
            }
        )

    async def instance_discovery(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path))
        host = urlsplit(self.public_url).netloc
        return web.json_response(
            {
                "tenant_discovery_endpoint": f"{self.public_url}/common/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }
        )

    async def authorize(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        upn = params.get("login_hint") or self.signed_in
        if params.get("client_id") not in self.apps or not params.get("redirect_uri"):
            return web.Response(status=400, text="AADSTS700016: Application not found in the directory.")
        if not upn or upn.lower() not in self.users:
            return web.Response(status=200, text="<html>sign-in page</html>", content_type="text/html")
        user = self.users[upn.lower()]
        code = self._new_code(params, user)
        target = params["redirect_uri"] + "?" + urlencode({"code": code, "state": params.get("state", "")})
        raise web.HTTPFound(target)

    async def token(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        form = dict(await request.post())
        self.requests.append(("POST", f"{request.path}:{form.get('grant_type')}"))
        client_id = str(form.get("client_id", ""))
        if client_id not in self.apps:
            return _error(
                400, "unauthorized_client", 700016, f"Application with identifier '{client_id}' was not found"
            )
        secret = self.apps[client_id]
        given = form.get("client_secret")
        if given is None and request.headers.get("Authorization", "").startswith("Basic "):
            raw = base64.b64decode(request.headers["Authorization"][6:]).decode()
            given = raw.split(":", 1)[1] if ":" in raw else None
        if secret is not None and given != secret:
            return _error(401, "invalid_client", 7000215, "Invalid client secret provided.")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._grant_code(form, client_id)
        if grant == "refresh_token":
            return self._grant_refresh(form, client_id)
        if grant == "client_credentials":
            return self._grant_client(form, client_id, tenant, secret)
        return _error(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'.")

    # --- grants ---------------------------------------------------------------------------------
    def _grant_code(self, form: dict[str, Any], client_id: str) -> web.Response:
        entry = self.codes.pop(str(form.get("code", "")), None)
        if entry is None or entry.expires_at < time.time() or entry.client_id != client_id:
            return _error(400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired")
        if form.get("redirect_uri") != entry.redirect_uri:
            return _error(400, "invalid_grant", 50011, "The redirect URI specified in the request does not match.")
        verifier = str(form.get("code_verifier", ""))
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        expected = entry.challenge
        if entry.method.upper() != "S256" or digest != expected:
            return _error(400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge.")
        return self._user_tokens(client_id, entry.user, entry.scope, entry.nonce)

    def _grant_refresh(self, form: dict[str, Any], client_id: str) -> web.Response:
        entry = self.refresh_tokens.get(str(form.get("refresh_token", "")))
        if entry is None or entry.client_id != client_id:
            return _error(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        if entry.revoked:
            return _error(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
                suberror="bad_token",
            )
        return self._user_tokens(client_id, entry.user, str(form.get("scope") or entry.scope), None)

    def _grant_client(self, form: dict[str, Any], client_id: str, tenant: str, secret: str | None) -> web.Response:
        if secret is None:
            return _error(
                400,
                "invalid_client",
                7000218,
                "The request body must contain client_assertion or client_secret.",
            )
        if tenant in ("common", "organizations", "consumers"):
            return _error(
                400,
                "invalid_request",
                90009,
                "Application is requesting a token for itself; use a tenant id.",
            )
        scope = str(form.get("scope", ""))
        if not all(s.endswith("/.default") for s in scope.split()):
            return _error(400, "invalid_scope", 1002012, "The provided value for scope is not valid; use /.default.")
        tok = self._new_access(client_id, tenant, None, (), self._roles(tenant))
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": int(self.token_lifetime),
                "ext_expires_in": int(self.token_lifetime),
                "access_token": tok.token,
            }
        )

    def _roles(self, tenant: str) -> tuple[str, ...]:
        if tenant not in self.consented_tenants:
            return ()
        return ("Calendars.ReadWrite", *self.extra_roles.get(tenant, ()))

    def _user_tokens(self, client_id: str, user: User, scope: str, nonce: str | None) -> web.Response:
        scopes = tuple(s for s in scope.split() if s not in ("openid", "profile", "offline_access"))
        tok = self._new_access(client_id, user.tenant_id, user, scopes, ())
        refresh = "rt." + secrets.token_urlsafe(24)
        self.refresh_tokens[refresh] = _Refresh(client_id=client_id, user=user, scope=scope)
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": client_id,
            "iss": f"{self.public_url}/{user.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": user.name,
            "oid": user.oid,
            "preferred_username": user.upn,
            "sub": hashlib.sha256(user.oid.encode()).hexdigest()[:43],
            "tid": user.tenant_id,
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        return web.json_response(
            {
                "token_type": "Bearer",
                "scope": " ".join(scopes),
                "expires_in": int(self.token_lifetime),
                "ext_expires_in": int(self.token_lifetime),
                "access_token": tok.token,
                "refresh_token": refresh,
                "id_token": _jwt(claims),
                "client_info": _client_info(user),
            }
        )

    def _new_access(
        self, client_id: str, tenant: str, user: User | None, scopes: tuple[str, ...], roles: tuple[str, ...]
    ) -> AccessToken:
        tok = AccessToken(
            token="at." + secrets.token_urlsafe(24),
            client_id=client_id,
            tenant_id=tenant,
            expires_at=time.time() + self.token_lifetime,
            user=user,
            scopes=scopes,
            roles=roles,
        )
        self.tokens[tok.token] = tok
        return tok

    def _new_code(self, params: dict[str, str], user: User) -> str:
        code = "code." + secrets.token_urlsafe(24)
        self.codes[code] = _Code(
            client_id=params.get("client_id", ""),
            redirect_uri=params.get("redirect_uri", ""),
            challenge=params.get("code_challenge", ""),
            method=params.get("code_challenge_method", "plain"),
            scope=params.get("scope", ""),
            user=user,
            nonce=params.get("nonce"),
            expires_at=time.time() + 600,
        )
        return code


class RoutingAdapter(HTTPAdapter):
    """A requests transport adapter that sends `prefix` URLs to `target` (the loopback fake)."""

    def __init__(self, prefix: str, target: str) -> None:
        super().__init__()
        self._prefix = prefix.rstrip("/")
        self._target = target.rstrip("/")

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = str(request.url)
        if url.startswith(self._prefix):
            request.url = self._target + url[len(self._prefix) :]
        return super().send(request, *args, **kwargs)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict[str, Any]) -> str:
    header = {"typ": "JWT", "alg": "RS256", "kid": "fake"}
    return ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(secrets.token_bytes(32))]
    )


def _client_info(user: User) -> str:
    return _b64(json.dumps({"uid": user.oid, "utid": user.tenant_id}).encode())


def _error(status: int, error: str, code: int, text: str, *, suberror: str | None = None) -> web.Response:
    trace = str(uuid.uuid4())
    body: dict[str, Any] = {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: {trace}",
        "error_codes": [code],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": trace,
        "correlation_id": str(uuid.uuid4()),
    }
    if suberror:
        body["suberror"] = suberror
    return web.json_response(body, status=status)
