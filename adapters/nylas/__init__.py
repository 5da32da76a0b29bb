"""Nylas v3: work calendars (Google, Microsoft, iCloud, Exchange...) through one Nylas application.

Connect: hosted OAuth from chat (`connect nylas`) or the CLI, giving a grant; or a grant the
practice already has, given to the CLI with the application's API key
(`clinicbot connection add nylas --username <grant id> [--password-env VAR holding the API key]`;
the key defaults to CLINICBOT_NYLAS_API_KEY; `--url` is not used: the region is
CLINICBOT_NYLAS_API_URL). Only calendars and events are read: never mail or contacts.

Its INTEGRATION offers calendars (discover, open_calendar), push channels (webhook destinations)
and signed webhooks. The main calendar gets the mirror role (the practice's events go out to it
with the calendar's projection); the others only block busy time.
"""

from __future__ import annotations

from adapters.nylas.connect import NylasOAuth
from adapters.nylas.discovery import discover, open_calendar
from adapters.nylas.provider import NylasCalendar
from adapters.nylas.settings import NylasSettings, nylas_settings
from adapters.nylas.webhooks import NylasAppWebhook, NylasPush, NylasWebhooks
from sync.contract.integration import CalendarSlot, ConnectSpec, HostSettings, Integration

__all__ = ["INTEGRATION", "NylasCalendar", "discover", "open_calendar"]


def _configured(host: HostSettings) -> bool:
    return nylas_settings(host).enabled


#: Nylas: a person's work calendar through the practice's Nylas application.
INTEGRATION = Integration(
    name="nylas",
    title="Nylas",
    settings=NylasSettings,
    configured=_configured,
    connect=ConnectSpec(
        kinds=("oauth2", "credentials"),
        oauth=NylasOAuth(),
        steps=(
            "Sign in with the work account through Nylas (`connect nylas`): only its calendars are read.",
            "A grant the practice already has is added on the command line: "
            "`clinicbot connection add nylas --username <grant id>` (the API key is CLINICBOT_NYLAS_API_KEY).",
        ),
        primary_role="mirror",
        other_role="busy",
        defaults={"url": "https://api.us.nylas.com"},
        setup_hint="set CLINICBOT_NYLAS_CLIENT_ID and CLINICBOT_NYLAS_API_KEY",
    ),
    calendars=CalendarSlot(discover=discover, open_calendar=open_calendar),
    push_channels=NylasPush(),
    signed_webhooks=NylasWebhooks(),
    app_webhooks=NylasAppWebhook(),
)
