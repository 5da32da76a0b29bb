"""SimplyBook.me: bookings from its JSON-RPC admin API, reschedules and cancels back, callbacks as a reason to look.

Connection: the company's SimplyBook address and an admin user, given to the CLI
(`clinicbot connection add simplybook --url https://<company>.simplybook.me --username <user login>
--password-env SIMPLYBOOK_PASSWORD`); the company login is the first label of the address. Each
service provider (unit) is one booking calendar (remote id = unit id), mapped to a practitioner with
`staff map simplybook <unit id> @practitioner`. What could not be verified is listed in README.md here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from adapters.simplybook.bookings import SimplyBookBookings
from adapters.simplybook.client import PROVIDER, SimplyBookClient
from adapters.simplybook.settings import SimplyBookSettings, simplybook_settings
from adapters.simplybook.webhooks import SimplyBookCallbacks, SimplyBookChannels
from sync.contract import AuthExpired, ConnectionInfo
from sync.contract.booking import staff_calendars
from sync.contract.integration import ConnectSpec, HostSettings, Integration, Profile

__all__ = ["INTEGRATION", "SimplyBookBookings", "company_login", "open_source"]


def company_login(url: str) -> str:
    """The company login in a SimplyBook address (`https://clinic.simplybook.me` -> `clinic`), or a bare login."""
    text = url.strip()
    host = (urlsplit(text).hostname or "") if "://" in text else text
    login = host.split(".", 1)[0].strip().lower()
    if not login or not login.replace("-", "").replace("_", "").isalnum():
        raise AuthExpired(f"simplybook: {url[:80]!r} does not name a company (https://<company>.simplybook.me)",
                          provider=PROVIDER)
    return login


def open_source(conn: ConnectionInfo, host: HostSettings) -> SimplyBookBookings:
    """The company's bookings, as the connection's admin user."""
    creds = conn.credentials or {}
    user, password = str(creds.get("username") or ""), str(creds.get("password") or "")
    if not user or not password:
        raise AuthExpired("simplybook: the connection needs the admin user login and password", provider=PROVIDER)
    cfg = simplybook_settings(host)
    company = company_login(str(conn.config.get("company") or conn.config.get("url") or ""))
    client = SimplyBookClient(cfg.simplybook_api_url, company, user, password,
                              token_seconds=cfg.simplybook_token_seconds, transport=conn.transport)
    api_key, secret_key = str(creds.get("api_key") or ""), str(creds.get("secret_key") or "")
    public = SimplyBookClient.public(cfg.simplybook_api_url, company, api_key,
                                     token_seconds=cfg.simplybook_token_seconds, transport=conn.transport) \
        if api_key and secret_key else None
    return SimplyBookBookings(client, public=public, secret_key=secret_key)


#: SimplyBook.me: an admin user on the command line; every service provider's bookings are a source.
INTEGRATION = Integration(
    name="simplybook",
    title="SimplyBook.me",
    aliases=("simplybook.me", "simplybookme"),
    settings=SimplyBookSettings,
    connect=ConnectSpec(
        kinds=("credentials",),
        steps=(
            "SimplyBook.me bookings are read from SimplyBook; reschedules and cancels made in chat go back to it.",
            "In SimplyBook, turn on the API feature (Custom Features > API) and create an admin user for clinicbot.",
            "The server's admin runs `clinicbot connection add simplybook --url https://<company>.simplybook.me "
            "--username <user login> --password-env SIMPLYBOOK_PASSWORD` (stored encrypted), then maps each "
            "service provider with `staff map simplybook <provider id> @practitioner`.",
            "For bookings within seconds, set SimplyBook's callback URL (Custom Features > API) to "
            "<public URL>/webhooks/simplybook/<connection id> with create, change and cancel; without it "
            "clinicbot polls. Each callback makes clinicbot read that one booking; with the company's API "
            "key and secret key (Custom Features > API) added as `--secret-env api_key=SIMPLYBOOK_API_KEY "
            "--secret-env secret_key=SIMPLYBOOK_SECRET_KEY`, that read is signed with the booking's hash.",
        ),
        secret_fields=("api_key", "secret_key"),
        primary_role="source",
        other_role="source",
    ),
    calendars=staff_calendars(open_source),
    booking_source=open_source,
    push_channels=SimplyBookChannels(),
    signed_webhooks=SimplyBookCallbacks(),
    staff_kind="unit",
    profile=Profile(reads="bookings with client, service, provider and status (admin JSON-RPC API)",
                    writes="reschedule and cancel", arrives="callback (unsigned: it only triggers a read), else poll",
                    setup="turn on the API feature, an admin user for clinicbot, the callback URL"),
)
