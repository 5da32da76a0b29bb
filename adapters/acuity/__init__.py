"""Acuity Scheduling: appointments from Acuity, reschedules and cancels back, signed form webhooks.

Connection: Acuity's OAuth (`connect acuity` in chat), or the account's user id and API key given to
the CLI (`clinicbot connection add acuity --username <user id> --password-env ACUITY_API_KEY`). Each Acuity
calendar (a staff member) is one booking calendar (remote id = calendarID), mapped to a practitioner
with `staff map acuity <calendarID> @practitioner`.
"""

from __future__ import annotations

import httpx

from adapters.acuity.bookings import AcuityBookings
from adapters.acuity.client import AcuityClient
from adapters.acuity.oauth import AcuityOAuth, bearer
from adapters.acuity.settings import AcuitySettings, acuity_settings
from adapters.acuity.webhooks import AcuityChannels, AcuityWebhooks
from sync.contract import AuthExpired, ConnectionInfo
from sync.contract.booking import staff_calendars
from sync.contract.integration import ConnectSpec, HostSettings, Integration, Profile

__all__ = ["INTEGRATION", "AcuityBookings", "open_source"]


def open_source(conn: ConnectionInfo, host: HostSettings) -> AcuityBookings:
    """The account's appointments, with its OAuth token or with Basic auth (user id, API key).

    The key that signs its webhooks: the API key, or for an OAuth connection the app's client secret.
    """
    creds = conn.credentials or {}
    cfg = acuity_settings(host)
    token = str(creds.get("access_token") or "")
    if token:
        client = AcuityClient(cfg.acuity_api_url, bearer(token), rate=cfg.acuity_requests_per_second,
                              transport=conn.transport)
        return AcuityBookings(client, api_key=cfg.acuity_client_secret or "")
    user, key = str(creds.get("username") or ""), str(creds.get("password") or "")
    if not user or not key:
        raise AuthExpired("acuity: the connection needs the user id and API key", provider="acuity")
    client = AcuityClient(cfg.acuity_api_url, httpx.BasicAuth(user, key), rate=cfg.acuity_requests_per_second,
                          transport=conn.transport)
    return AcuityBookings(client, api_key=key)


def _configured(host: HostSettings) -> bool:
    return acuity_settings(host).oauth_enabled


#: Acuity Scheduling: OAuth sign-in, or user id and API key on the command line; every calendar is a source.
INTEGRATION = Integration(
    notifies_clients=True,  # the platform emails its clients about bookings it holds
    name="acuity",
    title="Acuity Scheduling",
    aliases=("squarespace",),
    settings=AcuitySettings,
    configured=_configured,
    connect=ConnectSpec(
        kinds=("oauth2", "credentials"),
        oauth=AcuityOAuth(),
        defaults={"url": "https://acuityscheduling.com"},
        steps=(
            "Acuity appointments are read from Acuity; reschedules and cancels made in chat go back to Acuity.",
            "Sign in with the Acuity account that takes the bookings; or, in Acuity's Integrations > API, copy "
            "the user id and the API key and the server's admin runs `clinicbot connection add acuity --username "
            "<user id> --password-env ACUITY_API_KEY` (the key is stored encrypted).",
            "Map each calendar to a practitioner: `staff map acuity <calendar id> @practitioner`.",
        ),
        primary_role="source",
        other_role="source",
        setup_hint="set CLINICBOT_ACUITY_CLIENT_ID and CLINICBOT_ACUITY_CLIENT_SECRET "
                   "(or connect with the user id and API key on the command line)",
    ),
    calendars=staff_calendars(open_source),
    booking_source=open_source,
    push_channels=AcuityChannels(),
    signed_webhooks=AcuityWebhooks(),
    profile=Profile(reads="appointments with client, type, calendar, notes, location and status",
                    writes="reschedule and cancel (read first: Acuity has no idempotency key)",
                    arrives="signed webhook, poll as backstop",
                    setup="the API user id and key; the webhook URL in Integrations"),
)
