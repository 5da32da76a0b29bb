"""Read-only ICS feeds (http, https, webcal) for the adapter registry.

Connection config: {"url": "webcal://example.org/feed.ics", "timezone": "Europe/Berlin"
(optional: how to read floating times; else the feed's X-WR-TIMEZONE), "max_bytes": 10485760,
"max_seconds": 30, "summary_pattern": "auto" (how client and service are read from a booking's SUMMARY:
auto, service-client, client-service or title; see adapters.ics.bookings)}. No credentials: a private
feed's secret is part of its URL, so the URL is stored
encrypted with the connection's credentials ({"url": ...}) when given there.
"""

from __future__ import annotations

from typing import Any

from adapters.ics.bookings import DEFAULT_PATTERN, PATTERNS
from adapters.ics.feed import IcsFeed, parse_feed
from adapters.ics.fetch import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS, FeedFetcher, normalize_feed_url
from sync.contract import CalendarInfo, ConnectionInfo, Refused
from sync.contract.integration import CalendarSlot, ConnectOption, ConnectSpec, Integration, Profile

__all__ = ["INTEGRATION", "PATTERNS", "IcsFeed", "discover", "normalize_feed_url", "open_calendar", "parse_feed"]


def _url(conn: ConnectionInfo) -> str:
    url = (conn.credentials or {}).get("url") or conn.config.get("url")
    if not url:
        raise Refused("an ICS connection needs the feed URL (--url)")
    return normalize_feed_url(str(url))


def _fetcher(conn: ConnectionInfo, settings: Any) -> FeedFetcher:
    return FeedFetcher(
        allow_private_urls=bool(getattr(settings, "allow_private_urls", False)),
        transport=conn.transport,
        max_bytes=int(conn.config.get("max_bytes", DEFAULT_MAX_BYTES)),
        max_seconds=float(conn.config.get("max_seconds", DEFAULT_MAX_SECONDS)),
    )


async def discover(conn: ConnectionInfo, settings: Any) -> list[CalendarInfo]:
    """Fetch the feed once (so a bad URL or a malformed feed fails at connect time) and name it."""
    url = _url(conn)
    fetcher = _fetcher(conn, settings)
    try:
        fetched = await fetcher.fetch(url)
    finally:
        await fetcher.aclose()
    assert fetched.body is not None
    events, name, zone = parse_feed(fetched.body, conn.config.get("timezone"))
    return [
        CalendarInfo(
            remote_id=url,
            name=name or url.rsplit("/", 1)[-1] or "Calendar feed",
            timezone=conn.config.get("timezone") or zone,
            read_only=True,
            extra={"events": len(events)},
        )
    ]


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, settings: Any) -> IcsFeed:
    """The feed provider; `calendar_remote_id` is the normalized feed URL discovery returned."""
    url = normalize_feed_url(calendar_remote_id)
    return IcsFeed(url, _fetcher(conn, settings), default_tz=conn.config.get("timezone"),
                   pattern=str(conn.config.get("summary_pattern") or DEFAULT_PATTERN))


#: A read-only feed: its one calendar is a source (bookings published as ICS) unless an admin says busy.
INTEGRATION = Integration(
    name="ics",
    title="ICS feed",
    aliases=("ical",),
    connect=ConnectSpec(
        kinds=("feed_url",),
        steps=(
            "An ICS feed is read only: clinicbot uses it for busy times or as a booking source.",
            "Copy the feed's secret address (https://...ics) from your calendar or booking system.",
            "The server's admin adds it with the clinicbot command line (`clinicbot --help` lists the "
            "connection commands); the address is stored encrypted.",
        ),
        primary_role="source",
        other_role="source",
        options=(
            ConnectOption(
                "summary_pattern",
                "How a booking's title names client and service: auto, service-client (\"Physio - Jane Roe\"), "
                "client-service (\"Jane Roe (Physio)\") or title (read nothing from it).",
                choices=PATTERNS,
                default=DEFAULT_PATTERN,
            ),
        ),
    ),
    calendars=CalendarSlot(discover=discover, open_calendar=open_calendar),
    profile=Profile(writes="nothing: a feed is read only", arrives="poll of the feed",
                    setup="the feed's secret address"),
)
