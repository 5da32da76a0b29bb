"""A large feed is read in a worker thread, not on the event loop (issue 21, item 12): while a
9 MB feed is read, Slack acks and every other request keep being answered."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from adapters.ics import feed as feed_module
from tests.adapters.ics.fakes.ics_feed import FeedServer
from tests.adapters.ics.test_feed import NOW, WINDOW, feed_text, provider


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the thread each feed is parsed in (the real parser runs, unchanged)."""
    threads: list[int] = []
    real = feed_module.parse_feed

    def parse_feed(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(feed_module, "parse_feed", parse_feed)
    return threads


async def test_a_large_feed_is_read_off_the_event_loop(feeds: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    threads = _spy(monkeypatch)
    events = [(f"u{n}", NOW + timedelta(days=n % 90, minutes=n), f"Visit {n}") for n in range(3000)]
    body = feed_text(*events)
    assert len(body) > feed_module.OFFLOAD_BYTES
    feeds.publish("/big.ics", body)
    feed = provider(feeds.url("/big.ics"))
    changes = await feed.changes(None, WINDOW)
    await feed.aclose()
    assert len(changes.items) == 3000
    assert threads and threading.get_ident() not in threads


async def test_a_small_feed_is_read_in_place(feeds: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    threads = _spy(monkeypatch)
    feeds.publish("/small.ics", feed_text(("a", NOW + timedelta(hours=2), "A")))
    feed = provider(feeds.url("/small.ics"))
    assert len((await feed.changes(None, WINDOW)).items) == 1
    await feed.aclose()
    assert threads == [threading.get_ident()]  # a thread hop would cost more than the read
