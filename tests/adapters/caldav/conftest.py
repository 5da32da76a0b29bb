"""Real Radicale servers (auth none and htpasswd), one per test module, and CalDAV providers on
fresh calendars in them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.caldav import CalDAVCalendar, open_calendar
from sync.contract import ConnectionInfo
from sync.runtime.settings import Settings
from tests.adapters.caldav.fakes.radicale import RadicaleServer


@pytest.fixture(scope="module")
def radicale_none(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with RadicaleServer(tmp_path_factory.mktemp("radicale-none"), auth="none") as server:
        yield server


@pytest.fixture(scope="module")
def radicale_htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with RadicaleServer(tmp_path_factory.mktemp("radicale-htpasswd"), auth="htpasswd") as server:
        yield server


@pytest.fixture
def loopback_settings() -> Settings:
    """Radicale runs on 127.0.0.1, which the SSRF guard refuses unless allowed."""
    return Settings(CLINICBOT_ALLOW_PRIVATE_URLS=True)


def caldav_connection(server: RadicaleServer, user: str = "clinic", **config: object) -> ConnectionInfo:
    username, password = server.credentials(user)
    return ConnectionInfo(
        provider="caldav",
        account=username,
        config={"url": server.base_url + "/", **config},
        credentials={"username": username, "password": password},
    )


async def open_fresh(server: RadicaleServer, settings: Settings) -> tuple[str, CalDAVCalendar]:
    url = await server.make_calendar("clinic", f"cal-{uuid.uuid4().hex[:10]}")
    return url, open_calendar(caldav_connection(server), url, settings)


@pytest.fixture
async def caldav_pair(
    request: pytest.FixtureRequest, loopback_settings: Settings
) -> AsyncIterator[tuple[CalDAVCalendar, CalDAVCalendar]]:
    """(provider, peer) on one fresh calendar of the server named by the test class's `server`."""
    server: RadicaleServer = request.getfixturevalue(request.cls.server_fixture)
    url, provider = await open_fresh(server, loopback_settings)
    peer = open_calendar(caldav_connection(server), url, loopback_settings)
    yield provider, peer
    await provider.aclose()
    await peer.aclose()
