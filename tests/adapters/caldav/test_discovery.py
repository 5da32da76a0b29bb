"""Account discovery against a real Radicale: well-known URL, principal, home, calendars."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.caldav import discover, open_calendar
from sync.contract import AuthExpired, ConnectionInfo, Refused
from sync.contract.items import Window
from sync.runtime.settings import Settings
from tests.adapters.caldav.conftest import caldav_connection
from tests.adapters.caldav.fakes.radicale import RadicaleServer

pytestmark = pytest.mark.radicale


async def test_discovery_lists_event_calendars_with_sync_support(
    radicale_htpasswd: RadicaleServer, loopback_settings: Settings
) -> None:
    await radicale_htpasswd.make_calendar("clinic", "dr-lee", display_name="Dr. Lee")
    await radicale_htpasswd.make_calendar("clinic", "rooms", display_name="Rooms")
    calendars = await discover(caldav_connection(radicale_htpasswd), loopback_settings)
    by_name = {c.name: c for c in calendars}
    assert {"Dr. Lee", "Rooms"} <= set(by_name)
    lee = by_name["Dr. Lee"]
    assert lee.remote_id == radicale_htpasswd.calendar_url("clinic", "dr-lee")
    assert lee.extra and lee.extra["supports_sync"] is True and lee.extra["ctag"]
    assert not lee.read_only
    # The discovered id opens a working provider.
    provider = open_calendar(caldav_connection(radicale_htpasswd), lee.remote_id, loopback_settings)
    listing = await provider.changes(None, Window.around(datetime.now(UTC)))
    assert listing.full and listing.cursor and listing.cursor.startswith("s1:")
    await provider.aclose()


async def test_discovery_from_a_calendar_url_returns_that_calendar(
    radicale_none: RadicaleServer, loopback_settings: Settings
) -> None:
    url = await radicale_none.make_calendar("clinic", "front-desk", display_name="Front desk")
    conn = caldav_connection(radicale_none, url=url)
    (calendar,) = await discover(conn, loopback_settings)
    assert calendar.name == "Front desk" and calendar.remote_id == url


async def test_wrong_password_is_auth_expired(radicale_htpasswd: RadicaleServer, loopback_settings: Settings) -> None:
    conn = ConnectionInfo(
        provider="caldav",
        account="clinic",
        config={"url": radicale_htpasswd.base_url + "/"},
        credentials={"username": "clinic", "password": "not-the-password"},
    )
    with pytest.raises(AuthExpired):
        await discover(conn, loopback_settings)


async def test_loopback_server_is_refused_unless_allowed(radicale_none: RadicaleServer) -> None:
    with pytest.raises(Refused, match="CLINICBOT_ALLOW_PRIVATE_URLS"):
        await discover(caldav_connection(radicale_none), Settings())


async def test_icloud_needs_an_app_specific_password() -> None:
    conn = ConnectionInfo(provider="icloud", account="a@icloud.com", config={}, credentials=None)
    with pytest.raises(Refused, match="App-Specific Passwords"):
        await discover(conn, Settings())
