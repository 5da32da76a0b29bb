"""Connecting Outlook as plain data for the core: a person's own sign-in (OAuthFlow) and the
practice-wide application connection after an admin's consent (TenantConnect).

The core keeps MSAL's flow (PKCE verifier, nonce) encrypted in its single-use state, checks the
consent, and writes the Connection and its calendars once. Practitioners are addressed by Entra
object id (preferred: it never changes) or UPN; one with neither is left out of practice-wide sync.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.graph.auth import GraphAuthConfig, begin_sign_in, complete_sign_in
from adapters.graph.connection import GraphTransports
from adapters.graph.discovery import discover
from adapters.graph.errors import PROVIDER
from adapters.graph.identities import staff_user_ref
from sync.contract import ConnectionInfo
from sync.contract.integration import Connected, HostSettings, OAuthStart, StaffRef

__all__ = ["GraphOAuth", "GraphTenant", "staff_user_ref"]  # staff_user_ref: from adapters.graph.identities


class GraphOAuth:
    """Microsoft's delegated sign-in (sync.contract.integration.OAuthFlow), through MSAL with PKCE.

    `transport` may be a GraphTransports: its `login` is MSAL's http_client, its `graph` the Graph one.
    Option: login_hint.
    """

    async def begin(
        self, host: HostSettings, *, redirect_uri: str, options: Mapping[str, str], transport: Any = None
    ) -> OAuthStart:
        state = secrets.token_urlsafe(24)
        config = GraphAuthConfig.from_settings(host, http_client=_login_client(transport))
        # A GET callback, like the other integrations' /oauth/{integration}/callback.
        start = await begin_sign_in(
            config, redirect_uri, state=state, login_hint=options.get("login_hint"), response_mode="query"
        )
        return OAuthStart(start.auth_uri, state, {"flow": start.flow})

    async def finish(
        self, host: HostSettings, *, secret: dict[str, Any], query: Mapping[str, str], transport: Any = None
    ) -> Connected:
        config = GraphAuthConfig.from_settings(host, http_client=_login_client(transport))
        creds = await complete_sign_in(config, dict(secret["flow"]), dict(query))
        account = str(creds.get("username") or "")
        conn_config: dict[str, Any] = {"mode": "delegated"}
        calendars = await discover(ConnectionInfo(PROVIDER, account, conn_config, creds, transport=transport), host)
        return Connected(account=account, config=conn_config, credentials=creds, calendars=calendars)


def _login_client(transport: Any) -> Any:
    return transport.login if isinstance(transport, GraphTransports) else None


class GraphTenant:
    """The practice-wide connection (application permissions) acting on /users/{ref} of mapped practitioners."""

    async def connect(
        self, host: HostSettings, *, tenant: str, staff: Sequence[StaffRef], transport: Any = None
    ) -> Connected:
        tenant = tenant.strip().lower()
        users = sorted({ref for person in staff if (ref := staff_user_ref(person))})
        config: dict[str, Any] = {"mode": "application", "tenant_id": tenant, "users": users}
        credentials = {"kind": "application", "tenant_id": tenant}
        account = f"tenant {tenant}"
        calendars = await discover(ConnectionInfo(PROVIDER, account, config, credentials, transport=transport), host)
        return Connected(account=account, config=config, credentials=credentials, calendars=calendars)
