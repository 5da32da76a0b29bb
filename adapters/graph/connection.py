"""From a ConnectionInfo to a signed-in GraphClient, and the calendar paths we accept.

Two kinds of Graph connection exist:
- delegated: one practitioner's own sign-in (credentials {"kind": "delegated", "token_cache", ...});
  calendars are "me/calendar" (the default) or "me/calendars/{id}";
- application: practice-wide, after admin consent (credentials or config carry "tenant_id");
  calendars are "users/{upn-or-object-id}/calendar" or ".../calendars/{id}", for mapped practitioners.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.graph.auth import ApplicationTokens, BearerAuth, DelegatedTokens, GraphAuthConfig
from adapters.graph.client import GraphClient
from adapters.graph.errors import PROVIDER
from adapters.graph.settings import graph_settings
from sync.contract import ConnectionInfo, Refused

__all__ = [
    "CALENDAR_PATH",
    "GraphTransports",
    "auth_config",
    "is_application",
    "open_client",
    "parse_calendar_path",
]

#: A calendar's remote id is its Graph path: me|users/{ref} then calendar|calendars/{id}.
CALENDAR_PATH = re.compile(r"^(me|users/[^/?#\s]+)/(calendar|calendars/[^/?#\s]+)$")


@dataclass(frozen=True)
class GraphTransports:
    """Test and national-cloud hook, passed as ConnectionInfo.transport."""

    #: httpx transport for Graph calls.
    graph: httpx.AsyncBaseTransport | None = None
    #: requests-compatible http_client for MSAL (the authority URL is kept as configured).
    login: Any = None


def _transports(conn: ConnectionInfo) -> GraphTransports:
    if isinstance(conn.transport, GraphTransports):
        return conn.transport
    if isinstance(conn.transport, httpx.AsyncBaseTransport):
        return GraphTransports(graph=conn.transport)
    return GraphTransports()


def auth_config(conn: ConnectionInfo, settings: Any) -> GraphAuthConfig:
    """The app registration for this connection, with its injected MSAL http_client if any."""
    return GraphAuthConfig.from_settings(settings, http_client=_transports(conn).login)


def is_application(conn: ConnectionInfo) -> bool:
    """True for a practice-wide (application permissions) connection."""
    creds = conn.credentials or {}
    return creds.get("kind") == "application" or conn.config.get("mode") == "application"


def parse_calendar_path(remote_id: str) -> str:
    """Check a calendar remote id; Refused for anything that is not a Graph calendar path."""
    path = remote_id.strip().strip("/")
    if not CALENDAR_PATH.match(path):
        raise Refused(
            f"{PROVIDER}: {remote_id[:80]!r} is not a calendar path like users/{{id}}/calendar",
            provider=PROVIDER,
        )
    return path


def open_client(conn: ConnectionInfo, settings: Any, mailbox: str, *,
                max_connections: int = 20) -> tuple[GraphClient, bool]:
    """A GraphClient for the connection and whether its account is a personal (Outlook.com) one."""
    config = auth_config(conn, settings)
    source: DelegatedTokens | ApplicationTokens
    if is_application(conn):
        tenant = (conn.credentials or {}).get("tenant_id") or conn.config.get("tenant_id")
        source = ApplicationTokens(config, str(tenant or ""))
    else:
        source = DelegatedTokens(config, conn.credentials or {}, conn.save_credentials)
    client = GraphClient(
        graph_settings(settings).graph_url,
        BearerAuth(source),
        mailbox,
        transport=_transports(conn).graph,
        page_size=int(conn.config.get("page_size", 50)),
        max_connections=max_connections,
    )
    return client, bool(source.personal)
