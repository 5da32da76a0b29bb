"""Square Appointments: bookings from Square, reschedules and cancels back to Square, signed webhooks.

Connection: OAuth2 (`connection add square`), or an access token given to the CLI (`--password-env`
names the variable holding it; `--url` is ignored). Config: {"location_id": "L..." (optional: one
location only), "timezone": "Europe/London" (optional: how bookings are shown)}. Each bookable
team member is one booking calendar (remote id = team_member_id), mapped to a practitioner with
`staff map square <team_member_id> @practitioner`.
"""

from __future__ import annotations

from adapters.square.bookings import SquareBookings
from adapters.square.client import SquareClient
from adapters.square.oauth import SquareOAuth, fresh_token
from adapters.square.settings import SquareSettings, square_settings
from adapters.square.webhooks import SquarePush, SquareWebhooks
from sync.contract import ConnectionInfo
from sync.contract.booking import staff_calendars
from sync.contract.integration import ConnectSpec, HostSettings, Integration, Profile

__all__ = ["INTEGRATION", "SquareBookings", "open_source"]


def open_source(conn: ConnectionInfo, host: HostSettings) -> SquareBookings:
    """The connection's bookings; its token is refreshed (and saved) when due, on first use."""

    async def token() -> str:
        return await fresh_token(conn, host)

    client = SquareClient(square_settings(host).square_api_url, token, transport=conn.transport)
    return SquareBookings(client, location_id=conn.config.get("location_id"), tzid=conn.config.get("timezone"))


#: The bookable team members, one booking calendar each (the first is the primary).
calendars = staff_calendars(open_source)


def _configured(host: HostSettings) -> bool:
    return square_settings(host).enabled


#: Square Appointments: a seller's sign-in; every team member's bookings are a source.
INTEGRATION = Integration(
    notifies_clients=True,  # the platform emails its clients about bookings it holds
    name="square",
    title="Square Appointments",
    settings=SquareSettings,
    configured=_configured,
    connect=ConnectSpec(
        kinds=("oauth2", "credentials"),
        oauth=SquareOAuth(calendars.discover),
        steps=(
            "Square bookings are read from Square; reschedules and cancels made in chat go back to Square.",
            "Sign in with the Square seller account that takes the bookings.",
            "Map each team member to a practitioner: `staff map square <team member id> @practitioner`.",
        ),
        primary_role="source",
        other_role="source",
        setup_hint="set CLINICBOT_SQUARE_CLIENT_ID and CLINICBOT_SQUARE_CLIENT_SECRET",
    ),
    calendars=calendars,
    booking_source=open_source,
    push_channels=SquarePush(),
    signed_webhooks=SquareWebhooks(),
    profile=Profile(reads="bookings with customer, service, team member, location and status",
                    writes="reschedule and cancel (version and idempotency key)",
                    arrives="signed webhook subscriptions made by clinicbot, poll as backstop",
                    setup="a Square application (OAuth client id and secret)"),
)
