"""Bot Framework authentication for clinicbot: botbuilder's ConfigurationBotFrameworkAuthentication,
fed from Settings, with two changes that matter under load.

* Connector clients are cached per (app id, serviceUrl, audience). Stock botbuilder builds a new
  msrest ConnectorClient for every turn (about 7 ms of CPU: configuration, retry policy, pipeline,
  a fresh HTTP session that never reuses a connection). The cached clients share one aiohttp
  session on the server's loop (bot.teams.transport) instead of `requests` in a thread pool,
  and send activities without msrest's per-call serialization (bot.teams.outbound).
* The outbound token is fetched by msal in a worker thread and cached until shortly before it
  expires. Stock credentials fetch it synchronously inside the event loop on first use.

Inbound tokens are still validated by botbuilder itself (issuer, signature against the OpenID
metadata keys, expiry, audience = our app id, serviceurl claim), with the keys fetched without
blocking the loop (bot.teams.signing_keys). The channel sends one token for many activities, and
botbuilder's check decodes it about 15 times (~0.2 ms of CPU per activity): a token it accepted is
taken again for the same Authorization header, channel id and service URL (botbuilder's inputs) until
it expires, and for 5 minutes at most. A token it refused is never remembered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

import aiohttp
import requests
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, CallerIdConstants
from botframework.connector import AsyncBfPipeline, BotFrameworkConnectorConfiguration
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
    ServiceClientCredentialsFactory,
    UserTokenClient,
)
from botframework.connector.skills import BotFrameworkClient
from msrest.authentication import Authentication
from msrest.pipeline import SansIOHTTPPolicy

from bot.teams import signing_keys
from bot.teams.outbound import FastConversations
from bot.teams.transport import SharedSessionSender
from sync.runtime.settings import Settings

__all__ = ["BotAuth", "BotTokenCredentials", "TokenError", "build_auth"]

log = logging.getLogger("clinicbot.teams.auth")

TOKEN_PATH = "/oauth2/v2.0/token"  # noqa: S105 (a URL path, not a secret)
#: Refresh the outbound token this long before it expires.
REFRESH_MARGIN = 300
#: Service URLs are few (one per Teams region); the bound only stops an unauthenticated bot
#: from growing the cache without limit.
MAX_CLIENTS = 64
#: An accepted inbound token is taken again without checking its signature and claims for this long
#: at most (and never past its expiry), for the same channel id and service URL: the channel sends
#: one token for many activities, and botbuilder decodes each one about 15 times (~0.2 ms of CPU).
VALIDATED_FOR = 300.0
MAX_VALIDATED = 4096


class TokenError(PermissionError):
    """The bot could not get a token for the Bot Connector (wrong secret, unknown app...)."""


def _authority(settings: Settings) -> str:
    """The msal authority the bot signs in at to call the Bot Connector."""
    if settings.botframework_token_url:
        return settings.botframework_token_url.removesuffix(TOKEN_PATH)
    tenant = (
        settings.microsoft_app_tenant_id
        if settings.microsoft_app_type == "SingleTenant"
        else AuthenticationConstants.DEFAULT_CHANNEL_AUTH_TENANT
    )
    return f"{settings.login_url}/{tenant}"


class BotTokenCredentials(Authentication, SansIOHTTPPolicy):  # type: ignore[misc]
    """The bot's client-credentials token, as an msrest credential and a pipeline policy.

    `ensure_token()` (async) fetches or refreshes it; the synchronous hooks msrest calls only read
    the cached value, so nothing blocks the event loop.
    """

    def __init__(self, app_id: str, password: str, authority: str, scope: str) -> None:
        super().__init__()
        self.microsoft_app_id = app_id
        self._password = password
        self._authority = authority
        self._scopes = [scope if scope.endswith("/.default") else scope + "/.default"]
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock: asyncio.Lock | None = None
        self._msal: Any = None

    @property
    def anonymous(self) -> bool:
        return not self.microsoft_app_id

    async def ensure_token(self) -> None:
        """Have a token valid for at least REFRESH_MARGIN seconds (no-op when anonymous)."""
        if self.anonymous or (self._token and time.time() < self._expires_at - REFRESH_MARGIN):
            return
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._token and time.time() < self._expires_at - REFRESH_MARGIN:
                return
            result = await asyncio.to_thread(self._acquire)
            if "access_token" not in result:
                raise TokenError(
                    f"Bot Framework sign-in failed: {result.get('error', 'unknown error')}: "
                    f"{str(result.get('error_description', ''))[:300]}"
                )
            self._token = str(result["access_token"])
            self._expires_at = time.time() + float(result.get("expires_in", 3600))
            log.info("bot connector token acquired", extra={"expires_in": result.get("expires_in")})

    def _acquire(self) -> dict[str, Any]:
        import msal

        try:
            if self._msal is None:
                self._msal = msal.ConfidentialClientApplication(
                    self.microsoft_app_id,
                    client_credential=self._password,
                    authority=self._authority,
                    instance_discovery=False,
                )
            return dict(self._msal.acquire_token_for_client(scopes=self._scopes))
        except (ValueError, requests.RequestException) as exc:
            return {"error": "unreachable", "error_description": f"{type(exc).__name__}: {exc}"}

    def _header(self) -> str | None:
        if self.anonymous:
            return None
        if not self._token:
            raise TokenError("no Bot Framework token yet: ensure_token() was not awaited")
        return f"Bearer {self._token}"

    # msrest pipeline policy hook (aiohttp sender)
    def on_request(self, request: Any, **kwargs: Any) -> None:
        header = self._header()
        if header:
            request.http_request.headers["Authorization"] = header

    # msrest Authentication hook (requests sender, used by botbuilder's token API client)
    def signed_session(self, session: requests.Session | None = None) -> requests.Session:
        session = session or requests.Session()
        header = self._header()
        if header:
            session.headers["Authorization"] = header
        else:
            session.headers.pop("Authorization", None)
        return session


class _CredentialFactory(ServiceClientCredentialsFactory):
    """One BotTokenCredentials per scope, for the configured app id only."""

    def __init__(self, settings: Settings) -> None:
        self._app_id = settings.microsoft_app_id or ""
        self._password = settings.microsoft_app_password or ""
        self._authority = _authority(settings)
        self._by_scope: dict[str, BotTokenCredentials] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(self._app_id) and app_id == self._app_id

    async def is_authentication_disabled(self) -> bool:
        return not self._app_id

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> BotTokenCredentials:
        if self._app_id and app_id != self._app_id:
            raise TokenError("a token was requested for an app id that is not this bot's")
        scope = oauth_scope or AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        creds = self._by_scope.get(scope)
        if creds is None:
            creds = BotTokenCredentials(self._app_id, self._password, self._authority, scope)
            self._by_scope[scope] = creds
        return creds


class _Validated:
    """botbuilder's answer for a token it accepted: what a fresh AuthenticateRequestResult holds."""

    __slots__ = ("audience", "authentication_type", "caller_id", "claims", "until")

    def __init__(self, result: AuthenticateRequestResult, until: float) -> None:
        identity = result.claims_identity
        self.claims = dict(identity.claims)
        self.authentication_type = identity.authentication_type
        self.audience = result.audience
        self.caller_id = result.caller_id
        self.until = until

    def result(self) -> AuthenticateRequestResult:
        result = AuthenticateRequestResult()
        result.claims_identity = ClaimsIdentity(dict(self.claims), True, self.authentication_type)
        result.audience = self.audience
        result.caller_id = self.caller_id
        return result


class _CachingConnectorFactory(ConnectorFactory):
    def __init__(self, owner: BotAuth, app_id: str) -> None:
        self._owner = owner
        self._app_id = app_id

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        return await self._owner.connector(self._app_id, service_url, audience)


class BotAuth(BotFrameworkAuthentication):
    """ConfigurationBotFrameworkAuthentication plus the connector-client and token caches."""

    def __init__(self, settings: Settings) -> None:
        signing_keys.install()
        self.credentials = _CredentialFactory(settings)
        self.inner = ConfigurationBotFrameworkAuthentication(
            _configuration(settings), credentials_factory=self.credentials
        )
        self._clients: OrderedDict[tuple[str, str, str], ConnectorClient] = OrderedDict()
        #: (Authorization header, channel id, service URL) -> botbuilder's accepted result, while valid.
        self._validated: dict[tuple[str, str | None, str | None], _Validated] = {}
        self._token_clients: dict[str, UserTokenClient] = {}
        self.clients_built = 0
        self._http: aiohttp.ClientSession | None = None

    async def connector(self, app_id: str, service_url: str, audience: str | None) -> ConnectorClient:
        """The cached ConnectorClient for this service URL, with a fresh token."""
        scope = audience or AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        creds = await self.credentials.create_credentials(app_id, scope, "", True)
        await creds.ensure_token()
        key = (app_id or "", service_url, scope)
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=60)
            )
        config = BotFrameworkConnectorConfiguration(
            creds, service_url, pipeline_type=AsyncBfPipeline, sender=SharedSessionSender(self._http)
        )
        client = ConnectorClient(creds, custom_configuration=config)
        client.config.add_user_agent("clinicbot")
        client.conversations = FastConversations(client.conversations, config.sender, creds)
        self._clients[key] = client
        self.clients_built += 1
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        return client

    async def close(self) -> None:
        """Drop the cached clients and close their shared HTTP session."""
        self._clients.clear()
        if self._http is not None:
            await self._http.close()

    # --- BotFrameworkAuthentication --------------------------------------------------------
    async def authenticate_request(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        key = (auth_header, activity.channel_id, activity.service_url)
        kept = self._validated.get(key) if auth_header else None
        if kept is not None and time.time() < kept.until:
            result = kept.result()
        else:
            result = await self.inner.authenticate_request(activity, auth_header)
            if auth_header:
                self._keep_validated(key, result)
        result.connector_factory = _CachingConnectorFactory(self, _app_id(result.claims_identity))
        return result

    def _keep_validated(self, key: tuple[str, str | None, str | None], result: AuthenticateRequestResult) -> None:
        """Remember a token botbuilder accepted for this channel and service URL, until it expires
        (VALIDATED_FOR at most, so a signing key withdrawn from the key set stops counting soon)."""
        identity = result.claims_identity
        expires = identity.claims.get("exp") if identity is not None else None
        if not isinstance(expires, int | float) or isinstance(expires, bool) or not identity.is_authenticated:
            return
        until = min(float(expires), time.time() + VALIDATED_FOR)
        if until <= time.time():
            return
        if len(self._validated) >= MAX_VALIDATED:
            self._validated.pop(next(iter(self._validated)))
        self._validated[key] = _Validated(result, until)

    async def authenticate_streaming_request(
        self, auth_header: str, channel_id_header: str
    ) -> AuthenticateRequestResult:
        raise PermissionError("streaming (web socket) connections are not supported")

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return _CachingConnectorFactory(self, _app_id(claims_identity))

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        app_id = _app_id(claims_identity)
        client = self._token_clients.get(app_id)
        if client is None:
            client = await self.inner.create_user_token_client(claims_identity)
            self._token_clients[app_id] = client
        return client

    def create_bot_framework_client(self) -> BotFrameworkClient:
        return self.inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return self.inner.get_originating_audience()

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        return await self.inner.authenticate_channel_request(auth_header)


def _app_id(identity: ClaimsIdentity) -> str:
    claims = identity.claims if identity else {}
    return str(
        claims.get(AuthenticationConstants.AUDIENCE_CLAIM)
        or claims.get(AuthenticationConstants.APP_ID_CLAIM)
        or ""
    )


class _Configuration:
    """The attribute bag ConfigurationBotFrameworkAuthentication reads."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def _configuration(settings: Settings) -> _Configuration:
    # Always the parameterized path: the public-cloud values, with the metadata URL overridable.
    return _Configuration(
        APP_ID=settings.microsoft_app_id or "",
        APP_PASSWORD=settings.microsoft_app_password or "",
        APP_TYPE=settings.microsoft_app_type,
        APP_TENANTID=settings.microsoft_app_tenant_id or "",
        VALIDATE_AUTHORITY=True,
        TO_CHANNEL_FROM_BOT_LOGIN_URL=_authority(settings) + TOKEN_PATH,
        TO_CHANNEL_FROM_BOT_OAUTH_SCOPE=AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER=AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
        OAUTH_URL=AuthenticationConstants.OAUTH_URL,
        TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=(
            settings.botframework_openid_url
            or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
        ),
        # Emulator and skill tokens are checked against this URL: a configured metadata URL (a
        # national cloud, a test) must not leave them going to Microsoft's public one.
        TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL=(
            settings.botframework_openid_url
            or AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
        ),
        CALLER_ID=CallerIdConstants.public_azure_channel,
    )


def build_auth(settings: Settings) -> BotAuth:
    """The bot's authentication from settings (authentication is off without MicrosoftAppId)."""
    return BotAuth(settings)
