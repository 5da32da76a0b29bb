"""TimeTap: appointments polled from its API with a signed session token; cancels back.

Connection: the business's API key and private key (TimeTap's API comes with its Business and
Enterprise plans), given to the CLI (`clinicbot connection add timetap --username <API key>
--password-env TIMETAP_PRIVATE_KEY`). TimeTap has no webhooks: the window is re-read every
CLINICBOT_SYNC_POLL_SECONDS. Each staff member is one booking calendar, mapped with `staff map timetap
<professional id> @practitioner`. What could not be verified is in README.md here.
"""

from __future__ import annotations

from adapters.timetap.bookings import TimeTapBookings
from adapters.timetap.client import PROVIDER, TimeTapClient
from adapters.timetap.settings import TimeTapSettings, timetap_settings
from sync.contract import AuthExpired, ConnectionInfo
from sync.contract.booking import staff_calendars
from sync.contract.integration import ConnectSpec, HostSettings, Integration, Profile

__all__ = ["INTEGRATION", "TimeTapBookings", "open_source"]


def open_source(conn: ConnectionInfo, host: HostSettings) -> TimeTapBookings:
    creds = conn.credentials or {}
    key, private = str(creds.get("username") or ""), str(creds.get("password") or "")
    if not key or not private:
        raise AuthExpired("timetap: the connection needs the API key and the private key", provider=PROVIDER)
    return TimeTapBookings(TimeTapClient(timetap_settings(host).timetap_api_url, key, private,
                                         transport=conn.transport))


#: TimeTap: an API key pair on the command line; every staff member's appointments are a source.
INTEGRATION = Integration(
    name="timetap",
    title="TimeTap",
    settings=TimeTapSettings,
    connect=ConnectSpec(
        kinds=("credentials",),
        defaults={"url": "https://api.timetap.com"},
        steps=(
            "TimeTap appointments are read from TimeTap's API; cancels made in chat go back to it (moves are made "
            "in TimeTap).",
            "TimeTap's API comes with its Business and Enterprise plans: copy the API key and private key from "
            "its API settings. On another plan, connect the Google or Outlook calendar TimeTap syncs to instead "
            "(`connect google` or `connect outlook`).",
            "The server's admin runs `clinicbot connection add timetap --username <API key> --password-env "
            "TIMETAP_PRIVATE_KEY` (stored encrypted), then maps each staff member with "
            "`staff map timetap <professional id> @practitioner`.",
        ),
        primary_role="source",
        other_role="source",
    ),
    calendars=staff_calendars(open_source),
    booking_source=open_source,
    staff_kind="professional",
    profile=Profile(reads="appointments with client, reason, staff and status (no-show kept)",
                    writes="cancel (moves in TimeTap)",
                    arrives="poll: the window re-read in 93-day spans every CLINICBOT_SYNC_POLL_SECONDS",
                    setup="an API key pair (Business or Enterprise plan)"),
)
