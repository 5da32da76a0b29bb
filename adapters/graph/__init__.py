"""Microsoft 365 and Outlook.com calendars through Microsoft Graph, signed in with MSAL.

Entry points for the adapter registry: `discover(conn, settings)` and
`open_calendar(conn, calendar_remote_id, settings)`. Calendar remote ids are Graph paths:
"me/calendar", "me/calendars/{id}", "users/{upn-or-object-id}/calendar" ...
"""

from __future__ import annotations

from typing import Any

from adapters.graph.connection import GraphTransports, is_application, open_client, parse_calendar_path
from adapters.graph.discovery import discover
from adapters.graph.errors import PROVIDER
from adapters.graph.identities import STAFF_IDENTITIES
from adapters.graph.oauth import GraphOAuth, GraphTenant
from adapters.graph.provider import GraphCalendar
from adapters.graph.publishing import GraphPublishing
from adapters.graph.settings import GraphSettings, graph_settings
from adapters.graph.subscriptions import GraphPush, GraphWebhooks
from sync.contract import ConnectionInfo, Refused
from sync.contract.integration import CalendarSlot, ConnectSpec, HostSettings, Integration

__all__ = ["INTEGRATION", "GraphCalendar", "GraphTransports", "discover", "open_calendar"]


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, settings: Any) -> GraphCalendar:
    """A provider for one calendar path of this connection."""
    path = parse_calendar_path(calendar_remote_id)
    mailbox = path.split("/calendar", 1)[0]
    application = is_application(conn)
    if application == (mailbox == "me"):
        kind = "application" if application else "delegated"
        raise Refused(f"{PROVIDER}: a {kind} connection cannot open {mailbox!r} calendars", provider=PROVIDER)
    client, personal = open_client(conn, settings, mailbox)
    user = mailbox.removeprefix("users/") if application else (conn.credentials or {}).get("username")
    default = path.endswith("/calendar")
    schedule_address = user if (default and not personal and user and "@" in str(user)) else None
    return GraphCalendar(
        client,
        path,
        read_only=path in (conn.config.get("read_only_calendars") or []),
        show_as_free=path in (conn.config.get("show_as_free_calendars") or []),
        schedule_address=schedule_address,
    )


def _configured(host: HostSettings) -> bool:
    return graph_settings(host).enabled


def _client_id(host: HostSettings) -> str | None:
    own = graph_settings(host)
    return own.graph_client_id or own.microsoft_app_id


def _integration() -> Integration:
    return Integration(
        name="graph",
        title="Microsoft 365 / Outlook",
        aliases=("outlook", "microsoft"),
        word="outlook",
        settings=GraphSettings,
        configured=_configured,
        connect=ConnectSpec(
            kinds=("oauth2", "tenant_consent"),
            oauth=GraphOAuth(),
            client_id=_client_id,
            tenant=GraphTenant(),
            primary_role="source",
            other_role="busy",
            setup_hint="set CLINICBOT_GRAPH_CLIENT_ID and CLINICBOT_GRAPH_CLIENT_SECRET",
        ),
        calendars=CalendarSlot(discover=discover, open_calendar=open_calendar),
        push_channels=GraphPush(),
        signed_webhooks=GraphWebhooks(),
        staff_identities=STAFF_IDENTITIES,
        publishing=GraphPublishing(),
    )


#: Microsoft 365 and Outlook.com: a person's own sign-in, or practice-wide after an admin's consent.
INTEGRATION = _integration()
