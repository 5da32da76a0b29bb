"""A loopback stand-in for the Bot Framework cloud: the Bot Connector REST API (v3), the Entra
token endpoint the bot signs in at, and the Bot Framework OpenID metadata + JWKS the bot checks
inbound tokens against.

It runs its own event loop in a thread, because botbuilder fetches OpenID metadata and msal fetches
tokens with blocking `requests` calls: served from the test's own loop they would deadlock.

Behaviour follows the documentation: the connector wants `Authorization: Bearer <token issued here>`
when the bot has credentials (401 otherwise); the token endpoint checks client id, secret and the
`https://api.botframework.com/.default` scope (AADSTS7000215 / AADSTS70011 on mistakes); msal needs
https, so the login side is served over TLS with a trustme CA (`ca_path`).

Inbound tokens: `channel_token(...)` signs a JWT with this fake's own RSA key, published through
`openid_url` -> `jwks_uri`, exactly like the real `login.botframework.com` metadata.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import trustme
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["BOT_FRAMEWORK_ISSUER", "FakeBotConnector", "Recorded"]

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
SCOPE = "https://api.botframework.com/.default"


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    """One RSA key per test session: generating 2048-bit keys is the slow part of a fake's start."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Recorded:
    """What the bot did at the connector, in order."""

    #: ("send" | "reply" | "update" | "delete", conversation id, activity id or None, body)
    calls: list[tuple[str, str, str | None, dict[str, Any]]] = field(default_factory=list)
    created_conversations: list[dict[str, Any]] = field(default_factory=list)
    token_requests: int = 0
    rejected: int = 0
    #: GETs of the OpenID metadata document, and of the signing keys (JWKS).
    metadata_requests: int = 0
    key_requests: int = 0

    def activities(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        """Bodies of sent/replied activities (optionally for one conversation)."""
        return [
            b
            for kind, cid, _, b in self.calls
            if kind in ("send", "reply") and (conversation_id is None or cid == conversation_id)
        ]

    def updates(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [(cid, aid or "", b) for kind, cid, aid, b in self.calls if kind == "update"]


class FakeBotConnector:
    """Bot Connector + token endpoint + OpenID metadata on random loopback ports, in a thread."""

    def __init__(
        self, *, app_id: str | None = None, app_password: str | None = None, latency: float = 0.0
    ) -> None:
        self.app_id = app_id
        self.app_password = app_password
        self.latency = latency
        self.recorded = Recorded()
        self.key = _signing_key()
        # One key id with the one key: botbuilder caches signing keys per metadata URL for days, and
        # a later fake on a reused port must not publish a different kid for the same URL.
        self.kid = "fake-session-key"
        self._issued: set[str] = set()
        self._fail_next: list[tuple[int, dict[str, str]]] = []
        #: While set, the metadata endpoint answers 503 (an outage at login.botframework.com).
        self.metadata_down = False
        #: While set, a metadata request waits until `release_metadata()` or `hold_limit` seconds.
        self.hold_metadata = False
        self.hold_limit = 30.0
        self.metadata_held = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-bot-connector", daemon=True)
        self._runner: web.AppRunner | None = None
        self._tmp = tempfile.TemporaryDirectory()
        self.ca_path = str(Path(self._tmp.name) / "ca.pem")
        self.http_url = ""
        self.https_url = ""

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeBotConnector:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._tmp.cleanup()

    def __enter__(self) -> FakeBotConnector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        ca = trustme.CA()
        ca.cert_pem.write_to_path(self.ca_path)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        app = web.Application()
        app.router.add_post("/v3/conversations", self._create_conversation)
        app.router.add_post("/v3/conversations/{cid}/activities", self._send)
        app.router.add_post("/v3/conversations/{cid}/activities/{aid}", self._reply)
        app.router.add_put("/v3/conversations/{cid}/activities/{aid}", self._update)
        app.router.add_delete("/v3/conversations/{cid}/activities/{aid}", self._delete)
        app.router.add_get("/v1/.well-known/openidconfiguration", self._openid)
        app.router.add_get("/v1/.well-known/keys", self._jwks)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._entra_openid)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        plain = web.TCPSite(self._runner, "127.0.0.1", 0)
        tls = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ctx)
        await plain.start()
        await tls.start()
        self.http_url = f"http://127.0.0.1:{plain._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        self.https_url = f"https://127.0.0.1:{tls._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    # --- what tests use ----------------------------------------------------------------------
    @property
    def service_url(self) -> str:
        """The serviceUrl activities carry (with the trailing slash Teams sends)."""
        return self.http_url + "/"

    @property
    def openid_url(self) -> str:
        return self.http_url + "/v1/.well-known/openidconfiguration"

    @property
    def token_url(self) -> str:
        return self.https_url + "/botframework.com/oauth2/v2.0/token"

    def fail_next(self, status: int, headers: dict[str, str] | None = None) -> None:
        """Make the next connector call answer `status` (e.g. 429 with Retry-After)."""
        with self._lock:
            self._fail_next.append((status, headers or {}))

    def channel_token(
        self,
        *,
        audience: str | None = None,
        service_url: str | None = None,
        expires_in: int = 3600,
        issuer: str = BOT_FRAMEWORK_ISSUER,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
    ) -> str:
        """A token as the Bot Framework channel would send it, signed with this fake's key."""
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": audience or self.app_id,
            "iat": now - 10,
            "nbf": now - 10,
            "exp": now + expires_in,
            "serviceurl": service_url or self.service_url,
        }
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    async def wait_for(self, predicate: Callable[[Recorded], bool], timeout: float = 20.0) -> None:
        """Wait (in the test's loop) until the recorded calls satisfy `predicate`; the bound is
        generous (a loaded CI machine is slow) and only turns "never" into a failure."""
        deadline = time.monotonic() + timeout
        while not predicate(self.recorded):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; recorded calls: {self.recorded.calls!r}")
            await asyncio.sleep(0.01)

    # --- connector ---------------------------------------------------------------------------
    async def _guard(self, request: web.Request) -> web.Response | None:
        if self.latency:
            await asyncio.sleep(self.latency)
        with self._lock:
            failure = self._fail_next.pop(0) if self._fail_next else None
        if failure:
            status, headers = failure
            return web.json_response(
                {"error": {"code": "ServiceError", "message": f"injected {status}"}},
                status=status,
                headers=headers,
            )
        if self.app_password:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self._issued:
                self.recorded.rejected += 1
                return web.json_response(
                    {"error": {"code": "Unauthorized", "message": "Authorization has been denied"}},
                    status=401,
                )
        return None

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response(
                {"error": {"code": "BadArgument", "message": "invalid JSON"}}, status=400
            )
        if not isinstance(body, dict):
            return web.json_response(
                {"error": {"code": "BadArgument", "message": "expected an object"}}, status=400
            )
        return body

    async def _record(self, request: web.Request, kind: str) -> web.Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        if kind in ("send", "reply") and body.get("type") is None:
            return web.json_response(
                {"error": {"code": "BadArgument", "message": "activity type missing"}}, status=400
            )
        cid = request.match_info["cid"]
        aid = request.match_info.get("aid")
        self.recorded.calls.append((kind, cid, aid, body))
        return web.json_response({"id": aid if kind == "update" else uuid.uuid4().hex[:12]})

    async def _send(self, request: web.Request) -> web.Response:
        return await self._record(request, "send")

    async def _reply(self, request: web.Request) -> web.Response:
        return await self._record(request, "reply")

    async def _update(self, request: web.Request) -> web.Response:
        return await self._record(request, "update")

    async def _delete(self, request: web.Request) -> web.Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        self.recorded.calls.append(("delete", request.match_info["cid"], request.match_info["aid"], {}))
        return web.Response(status=200)

    async def _create_conversation(self, request: web.Request) -> web.Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        members = body.get("members") or []
        if not members or not all(isinstance(m, dict) and m.get("id") for m in members):
            return web.json_response(
                {"error": {"code": "BadArgument", "message": "members required"}}, status=400
            )
        self.recorded.created_conversations.append(body)
        # Teams answers a 1:1 create with the existing personal chat id ("a:" + opaque).
        return web.json_response({"id": "a:" + members[0]["id"].split(":")[-1], "activityId": None})

    # --- identity ----------------------------------------------------------------------------
    def release_metadata(self) -> None:
        """Let a held metadata request answer."""
        self._release.set()

    async def _openid(self, request: web.Request) -> web.Response:
        self.recorded.metadata_requests += 1
        if self.hold_metadata:
            self.metadata_held.set()
            await asyncio.get_running_loop().run_in_executor(None, self._release.wait, self.hold_limit)
            self.metadata_held.clear()
        if self.metadata_down:
            return web.json_response({"error": "temporarily unavailable"}, status=503)
        return web.json_response(
            {
                "issuer": BOT_FRAMEWORK_ISSUER,
                "jwks_uri": self.http_url + "/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.recorded.key_requests += 1
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", endorsements=["msteams", "emulator", "webchat", "directline"])
        return web.json_response({"keys": [jwk]})

    async def _entra_openid(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        base = f"{self.https_url}/{tenant}"
        return web.json_response(
            {
                "issuer": f"{self.https_url}/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "token"],
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.recorded.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return self._aad_error("unsupported_grant_type", "AADSTS70003: grant type not supported")
        if form.get("client_id") != self.app_id or form.get("client_secret") != self.app_password:
            return self._aad_error("invalid_client", "AADSTS7000215: Invalid client secret provided.", 401)
        if form.get("scope") != SCOPE:
            return self._aad_error(
                "invalid_scope",
                f"AADSTS70011: The provided value for scope {form.get('scope')} is not valid.",
            )
        token = "bf-" + uuid.uuid4().hex
        self._issued.add(token)
        return web.json_response(
            {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        )

    @staticmethod
    def _aad_error(error: str, description: str, status: int = 400) -> web.Response:
        return web.json_response(
            {
                "error": error,
                "error_description": description,
                "error_codes": [int(description[6:].split(":")[0])],
            },
            status=status,
        )
