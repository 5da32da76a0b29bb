"""Fetching a feed URL safely: the kit's FeedFetcher (adapters.kit.feeds), which shift feeds use too."""

from __future__ import annotations

from adapters.kit.feeds import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_SECONDS,
    FeedFetcher,
    Fetched,
    normalize_feed_url,
)

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_REDIRECTS", "DEFAULT_MAX_SECONDS", "FeedFetcher", "Fetched",
           "normalize_feed_url"]
