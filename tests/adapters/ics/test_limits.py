"""Feed fetch limits and the SSRF guard: size, time, redirects, private addresses, webcal."""

from __future__ import annotations

import ssl
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import trustme

from adapters.ics import normalize_feed_url, open_calendar
from adapters.ics.fetch import FeedFetcher
from adapters.kit.netguard import GuardTransport, check_address
from sync.contract import ConnectionInfo, Refused, Unavailable
from sync.contract.items import Window
from sync.runtime.settings import Settings
from tests.adapters.ics.fakes.ics_feed import FeedServer

WINDOW = Window.around(datetime.now(UTC))
FEED = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
MB = 1024 * 1024


async def test_a_50_mb_feed_with_content_length_is_refused_before_reading(feeds: FeedServer) -> None:
    feeds.publish_stream("/huge.ics", 50 * MB, declare_length=True)
    fetcher = FeedFetcher(allow_private_urls=True)
    with pytest.raises(Refused, match=r"50\.0 MB, over the 10 MB limit"):
        await fetcher.fetch(feeds.url("/huge.ics"))
    await fetcher.aclose()


async def test_a_50_mb_streamed_feed_is_cut_off_with_bounded_memory(feeds: FeedServer) -> None:
    feeds.publish_stream("/huge.ics", 50 * MB, declare_length=False)
    fetcher = FeedFetcher(allow_private_urls=True)
    tracemalloc.start()
    try:
        with pytest.raises(Refused, match="larger than the 10 MB limit"):
            await fetcher.fetch(feeds.url("/huge.ics"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await fetcher.aclose()
    assert peak < 24 * MB, f"peak {peak / MB:.1f} MB"
    assert feeds.streamed["/huge.ics"] < 50 * MB  # the server was not read to the end


async def test_a_feed_under_a_lower_limit_is_read_and_over_it_refused(feeds: FeedServer) -> None:
    feeds.publish("/small.ics", FEED)
    conn = ConnectionInfo("ics", "f", {"url": feeds.url("/small.ics"), "max_bytes": 20}, None)
    feed = open_calendar(conn, feeds.url("/small.ics"), Settings(CLINICBOT_ALLOW_PRIVATE_URLS=True))
    with pytest.raises(Refused, match="limit"):
        await feed.changes(None, WINDOW)
    await feed.aclose()


async def test_redirects_are_followed_a_few_times_only(feeds: FeedServer) -> None:
    feeds.publish("/new.ics", FEED)
    feeds.redirect("/old.ics", "/new.ics")
    fetcher = FeedFetcher(allow_private_urls=True)
    assert (await fetcher.fetch(feeds.url("/old.ics"))).body == FEED.encode()
    for n in range(5):
        feeds.redirect(f"/hop{n}", f"/hop{n + 1}")
    feeds.redirect("/hop5", "/new.ics")
    with pytest.raises(Unavailable, match="more than 3 redirects"):
        await fetcher.fetch(feeds.url("/hop0"))
    feeds.redirect("/ftp", "ftp://127.0.0.1/feed.ics")
    with pytest.raises(Refused, match="https://"):
        await fetcher.fetch(feeds.url("/ftp"))
    await fetcher.aclose()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]"])
async def test_loopback_feed_urls_are_refused_unless_allowed(feeds: FeedServer, host: str) -> None:
    feeds.publish("/lee.ics", FEED)
    url = f"http://{host}:{feeds.port}/lee.ics"
    conn = ConnectionInfo("ics", "f", {"url": url}, None)
    feed = open_calendar(conn, url, Settings())
    with pytest.raises(Refused) as caught:
        await feed.changes(None, WINDOW)
    assert "CLINICBOT_ALLOW_PRIVATE_URLS" in str(caught.value)
    assert "loopback" in str(caught.value)
    assert feeds.requests == []  # nothing was sent
    await feed.aclose()
    if host == "127.0.0.1":
        allowed = open_calendar(conn, url, Settings(CLINICBOT_ALLOW_PRIVATE_URLS=True))
        assert (await allowed.changes(None, WINDOW)).full
        await allowed.aclose()


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "127.0.0.1",
        "0.0.0.0",  # noqa: S104 - an address we refuse, not one we bind
        "100.64.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(Refused):
        check_address("feeds.example.org", address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses_pass(address: str) -> None:
    check_address("feeds.example.org", address)


async def test_redirect_to_a_private_address_is_refused_and_connections_are_pinned() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "https://intranet.example.org/admin.ics"})

    async def resolver(host: str, port: int) -> list[str]:
        return {"feeds.example.org": ["93.184.216.34"], "intranet.example.org": ["10.1.2.3"]}[host]

    guard = GuardTransport(httpx.MockTransport(handler), resolver=resolver)
    fetcher = FeedFetcher(transport=guard, allow_private_urls=True)  # the guard is passed in by hand here
    with pytest.raises(Refused, match=r"intranet\.example\.org.*private address \(10\.1\.2\.3\)"):
        await fetcher.fetch("webcal://feeds.example.org/clinic.ics")
    assert len(seen) == 1
    assert seen[0].url.host == "93.184.216.34"  # connected to the address that was checked
    assert seen[0].headers["Host"] == "feeds.example.org"
    assert seen[0].extensions["sni_hostname"] == "feeds.example.org"
    await fetcher.aclose()


def test_webcal_urls_become_https() -> None:
    assert normalize_feed_url("webcal://example.org/a.ics") == "https://example.org/a.ics"
    assert normalize_feed_url("WEBCALS://example.org/a.ics?k=1") == "https://example.org/a.ics?k=1"
    for bad in (
        "file:///etc/passwd",
        "ftp://example.org/a.ics",
        "example.org/a.ics",
        "https://u:p@example.org/",
    ):
        with pytest.raises(Refused):
            normalize_feed_url(bad)


@pytest.fixture
async def tls_feeds() -> AsyncIterator[tuple[FeedServer, ssl.SSLContext]]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with FeedServer(ssl_context=server_context) as server:
        yield server, client_context


async def test_webcal_feed_is_fetched_over_https(tls_feeds: tuple[FeedServer, ssl.SSLContext]) -> None:
    server, client_context = tls_feeds
    server.publish("/lee.ics", FEED)
    fetcher = FeedFetcher(allow_private_urls=True, transport=httpx.AsyncHTTPTransport(verify=client_context))
    fetched = await fetcher.fetch(f"webcal://127.0.0.1:{server.port}/lee.ics")
    assert fetched.body == FEED.encode() and fetched.etag
    assert server.requests[-1].path == "/lee.ics"
    await fetcher.aclose()
