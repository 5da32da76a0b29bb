"""Fetching a feed URL (an iCalendar feed, a published shift schedule) safely: conditional GET, size and
time limits, checked redirects.

- http, https and webcal(s) (read as https); nothing else.
- If-None-Match / If-Modified-Since from the last fetch; 304 means "unchanged".
- The body is streamed and the fetch aborted as soon as it passes `max_bytes` (after gzip
  decoding, so a compressed bomb is stopped too); memory stays bounded by the limit.
- The whole fetch, redirects included, must finish within `max_seconds`.
- Redirects are followed by hand, at most `max_redirects`, each hop through the SSRF guard.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from adapters.kit.http import RetryPolicy, make_client, map_response_error
from adapters.kit.netguard import GuardTransport
from sync.contract import NotFound, Refused, Unavailable

__all__ = ["FeedFetcher", "Fetched", "normalize_feed_url"]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_SECONDS = 30.0
DEFAULT_MAX_REDIRECTS = 3


def normalize_feed_url(url: str) -> str:
    """http(s) URL for a feed; webcal:// and webcals:// become https://. Refused otherwise."""
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("webcal", "webcals"):
        scheme = "https"
    if scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"a calendar feed URL must start with https://, http:// or webcal:// (got {url[:80]!r})")
    if parts.username or parts.password:
        raise Refused("put no user name or password in a feed URL")
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetch's outcome: body None means 304 Not Modified."""

    body: bytes | None
    etag: str | None
    last_modified: str | None
    digest: str | None


class FeedFetcher:
    """Conditional, bounded GETs of feed URLs."""

    def __init__(
        self,
        *,
        allow_private_urls: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        provider: str = "ics",
    ) -> None:
        if not allow_private_urls:
            transport = GuardTransport(transport)
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.max_redirects = max_redirects
        #: The integration named in errors ("ics", "shifts").
        self.provider = provider
        self._client = make_client(
            "https://feed.invalid",
            transport=transport,
            timeout=max_seconds,
            policy=RetryPolicy(attempts=2, max_wait=min(5.0, max_seconds / 4)),
            headers={"Accept": "text/calendar, */*;q=0.5"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """GET the feed, conditionally when validators are given."""
        try:
            async with asyncio.timeout(self.max_seconds):
                return await self._fetch(normalize_feed_url(url), etag, last_modified)
        except TimeoutError:
            raise Unavailable(f"{self.provider}: the feed took longer than {self.max_seconds:g} s",
                              provider=self.provider) from None

    async def _fetch(self, url: str, etag: str | None, last_modified: str | None) -> Fetched:
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for _ in range(self.max_redirects + 1):
            request = self._client.build_request("GET", url, headers=headers)
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise Unavailable(f"{self.provider}: the feed server timed out", provider=self.provider) from exc
            except httpx.HTTPError as exc:
                raise Unavailable(f"{self.provider}: cannot reach the feed ({type(exc).__name__})",
                                  provider=self.provider) from exc
            try:
                if response.status_code in (301, 302, 303, 307, 308):
                    location = response.headers.get("location")
                    if not location:
                        raise Unavailable(f"{self.provider}: redirect without a Location", provider=self.provider)
                    url = normalize_feed_url(str(response.url.join(location)))
                    continue
                if response.status_code == 304:
                    return Fetched(None, etag, last_modified, None)
                if response.status_code >= 400:
                    error = map_response_error(response, self.provider)
                    if isinstance(error, NotFound):
                        error = NotFound(f"{self.provider}: the feed URL answers 404 Not Found; "
                                         "check it is still published")
                    raise error
                body = await self._read_bounded(response)
            finally:
                await response.aclose()
            return Fetched(
                body,
                response.headers.get("etag"),
                response.headers.get("last-modified"),
                hashlib.sha256(body).hexdigest(),
            )
        raise Unavailable(f"{self.provider}: more than {self.max_redirects} redirects", provider=self.provider)

    async def _read_bounded(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        limit_mb = self.max_bytes / (1024 * 1024)
        if declared and declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
            raise Refused(f"{self.provider}: the feed is {int(declared) / 1048576:.1f} MB, "
                          f"over the {limit_mb:g} MB limit")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise Refused(f"{self.provider}: the feed is larger than the {limit_mb:g} MB limit; fetch stopped")
            chunks.append(chunk)
        return b"".join(chunks)
