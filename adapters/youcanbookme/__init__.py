"""YouCanBookMe: bookings read through its API, cancels back, and unsigned webhooks at a secret address.

Connection: the account id, its login and an API key, given to the CLI (`clinicbot connection add
youcanbookme --url https://api.youcanbook.me/v1/<account id> --username <login> --password-env
YCBM_API_KEY`). The command prints the webhook address once: it ends in a 256-bit token and is the
only thing that makes a delivery count. Each booking page (profile) is one booking calendar, mapped
with `staff map youcanbookme <profile id> @practitioner`. What could not be verified is in README.md here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from adapters.youcanbookme.bookings import YouCanBookMeBookings
from adapters.youcanbookme.client import PROVIDER, YouCanBookMeClient
from adapters.youcanbookme.settings import YouCanBookMeSettings, youcanbookme_settings
from adapters.youcanbookme.webhooks import PathTokenChannels, PathTokenWebhooks
from sync.contract import AuthExpired, ConnectionInfo
from sync.contract.booking import staff_calendars
from sync.contract.integration import ConnectSpec, HostSettings, Integration, Profile

__all__ = ["INTEGRATION", "YouCanBookMeBookings", "account_id", "open_source"]


def account_id(url: str) -> str:
    """The account id at the end of the connection's address (`.../v1/<account id>`)."""
    text = url.strip().rstrip("/")
    found = (urlsplit(text).path if "://" in text else text).rsplit("/", 1)[-1]
    if not found or not found.replace("-", "").replace("_", "").isalnum() or len(found) > 80:
        raise AuthExpired(f"youcanbookme: {url[:80]!r} does not end in an account id", provider=PROVIDER)
    return found


def open_source(conn: ConnectionInfo, host: HostSettings) -> YouCanBookMeBookings:
    creds = conn.credentials or {}
    user, key = str(creds.get("username") or ""), str(creds.get("password") or "")
    if not user or not key:
        raise AuthExpired("youcanbookme: the connection needs the login and API key", provider=PROVIDER)
    client = YouCanBookMeClient(youcanbookme_settings(host).youcanbookme_api_url,
                                account_id(str(conn.config.get("url") or "")), httpx.BasicAuth(user, key),
                                transport=conn.transport)
    return YouCanBookMeBookings(client, webhook_token=str(creds.get("webhook_token") or ""))


#: YouCanBookMe: an API key on the command line; every booking page's bookings are a source.
INTEGRATION = Integration(
    name="youcanbookme",
    title="YouCanBookMe",
    aliases=("ycbm", "youcanbook.me"),
    settings=YouCanBookMeSettings,
    connect=ConnectSpec(
        kinds=("credentials",),
        steps=(
            "YouCanBookMe bookings are read from YouCanBookMe; cancels made in chat go back to it (moves are "
            "made by the client's own link, or in YouCanBookMe).",
            "In YouCanBookMe, open Account > API key and copy the account id and the key.",
            "The server's admin runs `clinicbot connection add youcanbookme --url "
            "https://api.youcanbook.me/v1/<account id> --username <login> --password-env YCBM_API_KEY`; it "
            "prints the webhook address once. Put it in each booking page's notifications as a webhook.",
            "Then map each booking page with `staff map youcanbookme <profile id> @practitioner`.",
        ),
        primary_role="source",
        other_role="source",
    ),
    calendars=staff_calendars(open_source),
    booking_source=open_source,
    push_channels=PathTokenChannels(),
    signed_webhooks=PathTokenWebhooks(),
    path_token=True,
    staff_kind="profile",
    profile=Profile(reads="bookings with booker, booking page and status", writes="cancel (moves by the booker's link)",
                    arrives="webhook to a secret address (it only triggers a read), poll as backstop",
                    setup="an API key; the webhook address clinicbot prints once, in each page's notifications"),
)
