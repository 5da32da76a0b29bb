"""A loopback web server publishing ICS feeds the way booking systems do, for tests.

    async with FeedServer() as server:
        server.publish("/clinic.ics", body)            # ETag + Last-Modified, honours 304
        server.publish_stream("/huge.ics", 50 * 2**20)  # streamed, never held in memory
        server.redirect("/old.ics", "/clinic.ics")
        url = server.url("/clinic.ics")

It records every request (path and conditional headers) in `requests`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from types import TracebackType

from aiohttp import web

__all__ = ["FeedServer", "SeenRequest"]


@dataclass(frozen=True, slots=True)
class SeenRequest:
    path: str
    if_none_match: str | None
    if_modified_since: str | None


@dataclass(slots=True)
class _Feed:
    body: bytes
    etag: str
    modified: datetime
    content_type: str = "text/calendar; charset=utf-8"
    validators: bool = True


@dataclass(slots=True)
class _Stream:
    size: int
    declare_length: bool
    chunk: bytes


@dataclass
class FeedServer:
    feeds: dict[str, _Feed] = field(default_factory=dict)
    streams: dict[str, _Stream] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    requests: list[SeenRequest] = field(default_factory=list)
    #: Bytes actually written for streamed feeds, per path (to show a fetch was cut short).
    streamed: dict[str, int] = field(default_factory=dict)
    port: int = 0
    #: Serve HTTPS with this context (tests of webcal:// use a trustme certificate).
    ssl_context: ssl.SSLContext | None = None
    _runner: web.AppRunner | None = None

    # --- content ---------------------------------------------------------------------------------
    def publish(
        self,
        path: str,
        body: str | bytes,
        *,
        content_type: str = "text/calendar; charset=utf-8",
        validators: bool = True,
    ) -> None:
        """Serve `body` at `path`; without validators the server sends no ETag/Last-Modified."""
        data = body.encode() if isinstance(body, str) else body
        modified = datetime.now(UTC).replace(microsecond=0)
        etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
        self.feeds[path] = _Feed(data, etag, modified, content_type, validators)

    def publish_stream(self, path: str, size: int, *, declare_length: bool = True) -> None:
        """A feed of `size` bytes of valid-looking iCalendar lines, generated on the fly."""
        chunk = b"BEGIN:VCALENDAR\r\n" + b"X-FILLER:" + b"x" * 60 + b"\r\n"
        self.streams[path] = _Stream(size, declare_length, chunk * 800)

    def redirect(self, path: str, location: str) -> None:
        self.redirects[path] = location

    def delay(self, path: str, seconds: float) -> None:
        self.delays[path] = seconds

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    # --- server ----------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append(
            SeenRequest(path, request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since"))
        )
        if path in self.delays:
            await asyncio.sleep(self.delays[path])
        if path in self.redirects:
            raise web.HTTPFound(self.redirects[path])
        if path in self.streams:
            return await self._stream(request, path, self.streams[path])
        feed = self.feeds.get(path)
        if feed is None:
            raise web.HTTPNotFound(text="no such feed")
        if not feed.validators:
            return web.Response(body=feed.body, headers={"Content-Type": feed.content_type})
        headers = {"ETag": feed.etag, "Last-Modified": format_datetime(feed.modified, usegmt=True)}
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            if feed.etag in [tag.strip() for tag in if_none_match.split(",")] or if_none_match.strip() == "*":
                return web.Response(status=304, headers=headers)
        elif request.headers.get("If-Modified-Since"):
            try:
                since = parsedate_to_datetime(request.headers["If-Modified-Since"])
            except (TypeError, ValueError):
                since = None
            if since is not None and feed.modified <= since:
                return web.Response(status=304, headers=headers)
        return web.Response(body=feed.body, headers={**headers, "Content-Type": feed.content_type})

    async def _stream(self, request: web.Request, path: str, stream: _Stream) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/calendar"})
        if stream.declare_length:
            response.content_length = stream.size
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        self.streamed[path] = 0
        try:
            while sent < stream.size:
                piece = stream.chunk[: stream.size - sent]
                await response.write(piece)
                sent += len(piece)
                self.streamed[path] = sent
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        await response.write_eof()
        return response

    async def start(self) -> FeedServer:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FeedServer:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
