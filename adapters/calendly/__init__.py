"""Calendly: bookings (scheduled events) from Calendly, cancels back, reschedules refused with the client's link.

Connection: Calendly's OAuth (`connect calendly` in chat, `clinicbot connection add calendly`), whose
single-use refresh tokens are rotated under the connection's token lock, or a personal access token
given to the CLI (`clinicbot connection add calendly --username <account email> --password-env CALENDLY_TOKEN`).
Each member of the Calendly organization is one booking calendar (remote id = their user URI),
mapped with `staff map calendly <user URI> @practitioner`.
"""

from __future__ import annotations

from typing import Any

from adapters.calendly.bookings import CalendlyBookings
from adapters.calendly.client import PROVIDER, CalendlyClient
from adapters.calendly.oauth import CalendlyOAuth, refresh
from adapters.calendly.settings import CalendlySettings, calendly_settings
from adapters.calendly.webhooks import CalendlySubscriptions, CalendlyWebhooks
from adapters.kit.oauth import BearerAuth, RefreshingTokens
from sync.contract import ConnectionInfo
from sync.contract.booking import staff_calendars
from sync.contract.integration import ConnectOption, ConnectSpec, HostSettings, Integration, Profile

__all__ = ["INTEGRATION", "CalendlyBookings", "open_source", "tokens"]


def tokens(conn: ConnectionInfo, host: HostSettings) -> RefreshingTokens:
    """The connection's tokens: an OAuth pair refreshed (and rotated) when due, or a personal token as it is."""

    async def renew(current: dict[str, Any]) -> dict[str, Any]:
        return await refresh(host, current, transport=conn.transport)

    return RefreshingTokens(conn, renew, provider=PROVIDER)


def open_source(conn: ConnectionInfo, host: HostSettings) -> CalendlyBookings:
    """The account's scheduled events, with its OAuth tokens or its personal access token."""
    creds = conn.credentials or {}
    token: str | BearerAuth = str(creds.get("access_token") or creds.get("password") or "")
    if creds.get("refresh_token"):
        token = BearerAuth(tokens(conn, host))
    client = CalendlyClient(calendly_settings(host).calendly_api_url, token, transport=conn.transport)
    return CalendlyBookings(client, routing_forms=str(conn.config.get("routing_forms") or "off") == "on")


def _configured(host: HostSettings) -> bool:
    return calendly_settings(host).oauth_enabled


#: Calendly: OAuth sign-in (or a personal access token on the command line); every member's bookings are a source.
INTEGRATION = Integration(
    notifies_clients=True,  # the platform emails its clients about bookings it holds
    name="calendly",
    title="Calendly",
    settings=CalendlySettings,
    configured=_configured,
    connect=ConnectSpec(
        kinds=("oauth2", "credentials"),
        oauth=CalendlyOAuth(),
        defaults={"url": "https://api.calendly.com"},
        steps=(
            "Calendly bookings are read from Calendly; cancels made in chat go back to Calendly (Calendly has no "
            "reschedule API: chat offers the client's own reschedule link instead).",
            "Sign in with the Calendly account of the organization that takes the bookings; or the server's admin "
            "runs `clinicbot connection add calendly --username <account email> --password-env CALENDLY_TOKEN` "
            "with a personal access token.",
            "Map each member to a practitioner: `staff map calendly <user URI> @practitioner`.",
        ),
        primary_role="source",
        other_role="source",
        options=(ConnectOption(
            "routing_forms", "Read routing form submissions as leads (the account must be the organization's "
                             "owner or an admin: Calendly sends them to organization subscriptions only).",
            choices=("on", "off"), default="off"),),
        setup_hint="set CLINICBOT_CALENDLY_CLIENT_ID and CLINICBOT_CALENDLY_CLIENT_SECRET "
                   "(or connect with a personal access token on the command line)",
    ),
    calendars=staff_calendars(open_source),
    booking_source=open_source,
    push_channels=CalendlySubscriptions(),
    signed_webhooks=CalendlyWebhooks(),
    profile=Profile(reads="scheduled events with invitee, event name, answers and location",
                    writes="cancel; no reschedule API (the invitee's own link is offered)",
                    arrives="signed webhook subscriptions made by clinicbot, poll as backstop",
                    setup="a personal access token (webhooks need a paid plan)"),
)
