"""HubSpot: visits logged as CRM meetings on the client's contact, and meetings made in HubSpot read as bookings.

Connection: HubSpot's OAuth (`connect hubspot` in chat, `clinicbot connection add hubspot`), or a
private-app token given to the CLI (`--password-env HUBSPOT_TOKEN`). Each booking, move, cancel and
outcome of the practice's visits is logged (sync.notify.crm through `INTEGRATION.crm`). Each HubSpot
owner is also a calendar (remote id = owner id), busy at first; mapped with `staff map hubspot
<owner id> @practitioner` and made a source, the meetings made in HubSpot for them become bookings.
"""

from __future__ import annotations

from typing import Any

from adapters.hubspot.bookings import HubSpotMeetings
from adapters.hubspot.client import PROVIDER, HubSpotClient
from adapters.hubspot.forms import FIELD_DEFAULTS, HubSpotForms, configured_forms
from adapters.hubspot.meetings import HubSpotLog
from adapters.hubspot.oauth import HubSpotOAuth, refresh
from adapters.hubspot.settings import HubSpotSettings, hubspot_settings
from adapters.hubspot.webhooks import HubSpotChannels, HubSpotWebhooks
from adapters.kit.oauth import BearerAuth, RefreshingTokens
from sync.contract import ConnectionInfo
from sync.contract.booking import staff_calendars
from sync.contract.crm import CrmSlot
from sync.contract.integration import ConnectOption, ConnectSpec, HostSettings, Integration, Profile
from sync.contract.leads import LeadFeedSlot

__all__ = ["INTEGRATION", "HubSpotForms", "HubSpotLog", "HubSpotMeetings", "open_client", "open_forms", "open_log",
           "open_source"]


def open_client(conn: ConnectionInfo, host: HostSettings) -> HubSpotClient:
    """A client with the connection's OAuth tokens (refreshed when due) or its private-app token."""
    creds = conn.credentials or {}
    token: str | BearerAuth = str(creds.get("access_token") or creds.get("password") or "")
    if creds.get("refresh_token"):
        async def renew(current: dict[str, Any]) -> dict[str, Any]:
            return await refresh(host, current, transport=conn.transport)

        token = BearerAuth(RefreshingTokens(conn, renew, provider=PROVIDER))
    return HubSpotClient(hubspot_settings(host).hubspot_api_url, token, transport=conn.transport)


def open_source(conn: ConnectionInfo, host: HostSettings) -> HubSpotMeetings:
    return HubSpotMeetings(open_client(conn, host), portal_id=str(conn.config.get("portal_id") or ""),
                           app_secret=str(hubspot_settings(host).hubspot_client_secret or ""))


def open_log(conn: ConnectionInfo, host: HostSettings) -> HubSpotLog:
    return HubSpotLog(open_client(conn, host))


def open_forms(conn: ConnectionInfo, host: HostSettings) -> HubSpotForms:
    """The connection's form submissions (the forms its `forms` option names), fields per its options."""
    fields = {name: str(conn.config.get(name) or "") for name in FIELD_DEFAULTS}
    return HubSpotForms(open_client(conn, host), {k: v for k, v in fields.items() if v})


def _configured(host: HostSettings) -> bool:
    return hubspot_settings(host).oauth_enabled


#: HubSpot: OAuth sign-in (or a private-app token on the command line); visits logged, owners' meetings read.
INTEGRATION = Integration(
    name="hubspot",
    title="HubSpot",
    settings=HubSpotSettings,
    configured=_configured,
    connect=ConnectSpec(
        kinds=("oauth2", "credentials"),
        oauth=HubSpotOAuth(),
        defaults={"url": "https://api.hubapi.com"},
        steps=(
            "Every booking, move, cancel, attended and no-show is logged in HubSpot as a meeting on the client's "
            "contact (found by email, or made).",
            "Sign in with a HubSpot user who may edit contacts; or the server's admin runs `clinicbot connection "
            "add hubspot --username <account> --password-env HUBSPOT_TOKEN` with a private-app token.",
            "To turn HubSpot form submissions into leads, name the forms: `clinicbot connection set ID --forms "
            "<form guid>,<form guid>` (or `--forms` when adding the connection).",
            "To read meetings made in HubSpot for a practitioner as bookings, map the owner "
            "(`staff map hubspot <owner id> @practitioner`) and make their calendar a source "
            "(`clinicbot calendar set ID --role source`).",
        ),
        # Logging only until an admin says otherwise: a CRM's owners hold sales meetings too, which are
        # not visits; a mapped practitioner's calendar is made a source on purpose.
        primary_role="busy",
        other_role="busy",
        options=(
            ConnectOption("forms", "HubSpot form GUIDs whose submissions become leads (comma-separated; read "
                          "every two minutes)"),
            ConnectOption("form_service_field", "The form field holding the service wanted (default: service)"),
            ConnectOption("form_practitioner_field", "The form field holding the preferred practitioner "
                          "(default: preferred_practitioner)"),
            ConnectOption("form_location_field", "The form field holding the preferred location "
                          "(default: preferred_location)"),
            ConnectOption("form_times_field", "The form field holding the preferred times, ';' between several "
                          "(default: preferred_times)"),
        ),
        setup_hint="set CLINICBOT_HUBSPOT_CLIENT_ID and CLINICBOT_HUBSPOT_CLIENT_SECRET "
                   "(or connect with a private-app token on the command line)",
    ),
    calendars=staff_calendars(open_source),
    booking_source=open_source,
    push_channels=HubSpotChannels(),
    signed_webhooks=HubSpotWebhooks(),
    crm=CrmSlot(open=open_log),
    lead_feed=LeadFeedSlot(open=open_forms, forms=configured_forms),
    staff_kind="owner",
    profile=Profile(reads="meetings made in HubSpot for mapped owners, with the contact",
                    writes="logs every visit as a meeting (booked, moved, cancelled, attended, no-show); "
                           "reschedule and cancel of HubSpot meetings",
                    arrives="signed webhooks (v3) from the app, poll as backstop",
                    setup="a public app (client id and secret) with the app's webhook URL, or a private-app token"),
)
