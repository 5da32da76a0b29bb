"""Salesforce: visits logged as Events upserted by clinicbot's visit key; Events made in Salesforce read as bookings.

Connection: Salesforce's OAuth (`connect salesforce` in chat, `clinicbot connection add salesforce`,
`--environment sandbox` for a sandbox org). Each booking, move, cancel and outcome of the practice's
visits is upserted as an Event linked to the client's Contact or Lead (sync.notify.crm through
`INTEGRATION.crm`). Each active user is also a calendar (remote id = user id), busy at first; mapped with
`staff map salesforce <user id> @practitioner` and made a source, it is polled on SystemModstamp.
"""

from __future__ import annotations

from typing import Any

from adapters.kit.oauth import BearerAuth, RefreshingTokens
from adapters.salesforce.bookings import SalesforceEvents
from adapters.salesforce.client import PROVIDER, SalesforceClient
from adapters.salesforce.events import SalesforceLog
from adapters.salesforce.oauth import ENVIRONMENTS, SalesforceOAuth, refresh
from adapters.salesforce.settings import SalesforceSettings, salesforce_settings
from sync.contract import ConnectionInfo
from sync.contract.booking import staff_calendars
from sync.contract.crm import CrmSlot
from sync.contract.integration import (
    ConnectOption,
    ConnectSpec,
    HostSettings,
    Integration,
    Profile,
)

__all__ = ["INTEGRATION", "SalesforceEvents", "SalesforceLog", "open_client", "open_log", "open_source"]


def open_client(conn: ConnectionInfo, host: HostSettings) -> SalesforceClient:
    """A client on the org's instance with its session, refreshed before it lapses and after a 401."""
    creds = conn.credentials or {}

    async def renew(current: dict[str, Any]) -> dict[str, Any]:
        return await refresh(host, current, transport=conn.transport)

    tokens = RefreshingTokens(conn, renew, provider=PROVIDER)
    instance = str(creds.get("instance_url") or conn.config.get("instance_url") or "")
    return SalesforceClient(instance, salesforce_settings(host).salesforce_api_version,
                            BearerAuth(tokens) if creds.get("refresh_token") else str(creds.get("access_token") or ""),
                            transport=conn.transport)


def open_source(conn: ConnectionInfo, host: HostSettings) -> SalesforceEvents:
    return SalesforceEvents(open_client(conn, host), salesforce_settings(host).salesforce_external_id_field)


def open_log(conn: ConnectionInfo, host: HostSettings) -> SalesforceLog:
    return SalesforceLog(open_client(conn, host), salesforce_settings(host).salesforce_external_id_field)


def _configured(host: HostSettings) -> bool:
    return salesforce_settings(host).oauth_enabled


#: Salesforce: OAuth sign-in; visits upserted as Events, users' Events polled as bookings.
INTEGRATION = Integration(
    name="salesforce",
    title="Salesforce",
    aliases=("sfdc",),
    settings=SalesforceSettings,
    configured=_configured,
    connect=ConnectSpec(
        kinds=("oauth2",),
        oauth=SalesforceOAuth(),
        options=(ConnectOption("environment", "Production org (login.salesforce.com) or sandbox "
                                              "(test.salesforce.com).", choices=ENVIRONMENTS,
                               default="production"),),
        steps=(
            "Every booking, move, cancel, attended and no-show is logged in Salesforce as an Event on the client's "
            "Contact or Lead (a Lead is made when there is neither).",
            "Your Salesforce admin adds a text field `Clinicbot_Visit_Key__c` (External ID, unique) to Activity "
            "once; then sign in with a user who may edit Events, Contacts and Leads.",
            "To read Events made in Salesforce for a practitioner as bookings, map the user "
            "(`staff map salesforce <user id> @practitioner`) and make their calendar a source "
            "(`clinicbot calendar set ID --role source`).",
        ),
        # Logging only until an admin says otherwise: a CRM's owners hold sales meetings too, which are
        # not visits; a mapped practitioner's calendar is made a source on purpose.
        primary_role="busy",
        other_role="busy",
        setup_hint="set CLINICBOT_SALESFORCE_CLIENT_ID and CLINICBOT_SALESFORCE_CLIENT_SECRET "
                   "(a connected app with the api and refresh_token scopes)",
    ),
    calendars=staff_calendars(open_source),
    booking_source=open_source,
    crm=CrmSlot(open=open_log),
    staff_kind="user",
    profile=Profile(reads="Events made in Salesforce for mapped users, with the Contact or Lead",
                    writes="logs every visit as an Event upserted by external id (booked, moved, cancelled, "
                           "attended, no-show); reschedule and cancel of Salesforce Events",
                    arrives="poll on SystemModstamp (Change Data Capture not used)",
                    setup="a connected app, and an External ID field on Activity"),
)
