"""ICS feeds: full listings only when content changed, conditional GET, bad feeds keep nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from adapters.ics import discover, open_calendar
from adapters.ics.feed import IcsFeed
from adapters.ics.fetch import FeedFetcher
from sync.contract import BadPayload, ConnectionInfo, CursorExpired, NotFound, Refused, Unavailable
from sync.contract.items import RemoteItem, Window
from sync.runtime.settings import Settings
from tests.adapters.ics.fakes.ics_feed import FeedServer

NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = Window.around(NOW)
LOOPBACK_OK = Settings(CLINICBOT_ALLOW_PRIVATE_URLS=True)


def feed_text(*events: tuple[str, datetime, str], name: str = "Jane App - Dr. Lee") -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//booking//EN", f"X-WR-CALNAME:{name}"]
    for uid, start, summary in events:
        lines += [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
            f"DTEND:{start + timedelta(minutes=30):%Y%m%dT%H%M%SZ}",
            f"SUMMARY:{summary}",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def provider(url: str, **config: object) -> IcsFeed:
    conn = ConnectionInfo(provider="ics", account="feed", config={"url": url, **config}, credentials=None)
    return open_calendar(conn, url, LOOPBACK_OK)


def day(n: int) -> datetime:
    return (NOW + timedelta(days=n)).replace(hour=9, minute=0, second=0)


async def test_full_listing_then_304_then_full_again_when_content_changes(feeds: FeedServer) -> None:
    feeds.publish("/lee.ics", feed_text(("a", day(1), "A"), ("b", day(2), "B"), ("c", day(400), "far")))
    feed = provider(feeds.url("/lee.ics"))
    first = await feed.changes(None, WINDOW)
    assert first.full and sorted(i.remote_id for i in first.items) == ["a", "b"]
    assert all(i.etag for i in first.items)

    unchanged = await feed.changes(first.cursor, WINDOW)
    assert unchanged.items == [] and unchanged.deleted_ids == [] and not unchanged.full
    assert feeds.requests[-1].if_none_match is not None  # the server answered 304 to a conditional GET
    assert unchanged.cursor

    feeds.publish("/lee.ics", feed_text(("a", day(1), "A moved"), ("d", day(3), "D")))
    changed = await feed.changes(unchanged.cursor, WINDOW)
    assert changed.full
    by_id = {i.remote_id: i for i in changed.items}
    assert sorted(by_id) == ["a", "d"]  # b is gone: a full listing that lacks it means deleted
    assert by_id["a"].event.summary == "A moved"
    assert by_id["a"].etag != next(i.etag for i in first.items if i.remote_id == "a")
    await feed.aclose()


async def test_same_bytes_without_validators_is_no_change(feeds: FeedServer) -> None:
    feeds.publish("/plain.ics", feed_text(("a", day(1), "A")), validators=False)
    feed = provider(feeds.url("/plain.ics"))
    first = await feed.changes(None, WINDOW)
    again = await feed.changes(first.cursor, WINDOW)
    assert len(first.items) == 1 and again.items == [] and not again.full
    assert feeds.requests[-1].if_none_match is None
    await feed.aclose()


async def test_if_modified_since_alone_is_honoured(feeds: FeedServer) -> None:
    feeds.publish("/lee.ics", feed_text(("a", day(1), "A")))
    feed = provider(feeds.url("/lee.ics"))
    first = await feed.changes(None, WINDOW)
    assert first.cursor
    # A cursor from a server that sent only Last-Modified.
    state = json.loads(first.cursor[3:])
    state.pop("e")
    again = await feed.changes("i1:" + json.dumps(state), WINDOW)
    assert again.items == [] and not again.full
    assert feeds.requests[-1].if_modified_since and feeds.requests[-1].if_none_match is None
    await feed.aclose()


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("<html><body>502 Bad Gateway</body></html>", 1, "content line"),
        (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nSUMMARY:no start\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n",
            3,
            "VEVENT without DTSTART",
        ),
        (
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:tomorrow\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            4,
            "DTSTART",
        ),
    ],
)
async def test_malformed_feed_names_the_line_and_keeps_the_last_good_cursor(
    feeds: FeedServer, body: str, line: int, words: str
) -> None:
    feeds.publish("/lee.ics", feed_text(("a", day(1), "A")))
    feed = provider(feeds.url("/lee.ics"))
    good = await feed.changes(None, WINDOW)
    feeds.publish("/lee.ics", body)
    with pytest.raises(BadPayload) as caught:
        await feed.changes(good.cursor, WINDOW)
    assert caught.value.line == line and f"line {line}" in str(caught.value) and words in str(caught.value)
    # The caller still holds `good.cursor`; once the feed is fixed the next sync is a normal one.
    feeds.publish("/lee.ics", feed_text(("a", day(1), "A"), ("b", day(2), "B")))
    recovered = await feed.changes(good.cursor, WINDOW)
    assert recovered.full and sorted(i.remote_id for i in recovered.items) == ["a", "b"]
    await feed.aclose()


async def test_garbage_cursor_expires(feeds: FeedServer) -> None:
    feed = provider(feeds.url("/lee.ics"))
    for garbage in ("x", "i1:{nope", 'i1:{"z":"1"}', "s1:abc"):
        with pytest.raises(CursorExpired):
            await feed.changes(garbage, WINDOW)
    await feed.aclose()


async def test_series_overrides_get_their_own_ids_and_free_busy_expands(feeds: FeedServer) -> None:
    start = day(2)
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:s\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=3\r\nSUMMARY:S\r\nEND:VEVENT\r\n"
        f"BEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID:{start + timedelta(days=1):%Y%m%dT%H%M%SZ}\r\n"
        f"DTSTART:{start + timedelta(days=1, hours=3):%Y%m%dT%H%M%SZ}\r\nDURATION:PT1H\r\nSUMMARY:moved\r\n"
        "TRANSP:TRANSPARENT\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    feeds.publish("/s.ics", body)
    feed = provider(feeds.url("/s.ics"))
    listing = await feed.changes(None, WINDOW)
    ids = [i.remote_id for i in listing.items]
    assert ids[0] == "s" and ids[1] == f"s#{start + timedelta(days=1):%Y%m%dT%H%M%SZ}"
    busy = await feed.free_busy(WINDOW)
    assert [b.start for b in busy] == [start, start + timedelta(days=2)]  # the moved one is transparent
    assert (await feed.get("s")).event.rrule == "FREQ=DAILY;COUNT=3"
    with pytest.raises(NotFound):
        await feed.get("missing")
    await feed.aclose()


async def test_feed_is_read_only(feeds: FeedServer) -> None:
    feed = provider(feeds.url("/lee.ics"))
    assert feed.capabilities.read_only
    event = (await _one_event(feeds)).event
    with pytest.raises(Refused):
        await feed.create(event, "k")
    with pytest.raises(Refused):
        await feed.update("a", event, None)
    with pytest.raises(Refused):
        await feed.delete("a", None)
    await feed.aclose()


async def _one_event(feeds: FeedServer) -> RemoteItem:
    feeds.publish("/one.ics", feed_text(("a", day(1), "A")))
    feed = provider(feeds.url("/one.ics"))
    try:
        return (await feed.changes(None, WINDOW)).items[0]
    finally:
        await feed.aclose()


async def test_discover_names_the_feed_and_rejects_a_broken_one(feeds: FeedServer) -> None:
    feeds.publish("/lee.ics", feed_text(("a", day(1), "A"), name="SimplePractice: Dr. Lee"))
    conn = ConnectionInfo(provider="ics", account="feed", config={"url": feeds.url("/lee.ics")}, credentials=None)
    (info,) = await discover(conn, LOOPBACK_OK)
    assert info.name == "SimplePractice: Dr. Lee" and info.read_only and info.remote_id == feeds.url("/lee.ics")
    feeds.publish("/lee.ics", "not a calendar at all")
    with pytest.raises(BadPayload):
        await discover(conn, LOOPBACK_OK)


async def test_http_errors_map_onto_the_tree(feeds: FeedServer) -> None:
    feed = provider(feeds.url("/gone.ics"))
    with pytest.raises(NotFound, match="404"):
        await feed.changes(None, WINDOW)
    feeds.publish("/slow.ics", feed_text(("a", day(1), "A")))
    feeds.delay("/slow.ics", 1.2)
    slow = IcsFeed(feeds.url("/slow.ics"), FeedFetcher(allow_private_urls=True, max_seconds=0.3))
    with pytest.raises(Unavailable, match=r"longer than 0\.3 s"):
        await slow.changes(None, WINDOW)
    await slow.aclose()
    await feed.aclose()
