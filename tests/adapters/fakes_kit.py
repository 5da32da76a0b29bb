"""What the loopback vendor fakes share: serving on a random loopback port, reading a Bearer token,
offset paging, and sending webhooks in the background.

Each fake keeps its vendor's own error bodies, auth rules and payloads; only the plumbing is here.

- `LoopbackFake`: `start()` serves the fake's `routes()` behind its `_gate` middleware on 127.0.0.1
  with a free port (`url`), `close()` stops it. `requests` is the fake's log of calls.
- `WebhookFake`: a LoopbackFake that also posts webhooks: `_later` runs a delivery as a task,
  `send_webhook` posts one and records the answer's status in `delivered` (0: no answer), `drain`
  waits for every delivery scheduled so far; `close()` drains first.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import aiohttp
from aiohttp import web

__all__ = ["LoopbackFake", "WebhookFake", "bearer", "offset_page"]

T = TypeVar("T")


def bearer(request: web.Request, scheme: str = "Bearer") -> str:
    """The token of an `Authorization: <scheme> <token>` header; "" without one."""
    header = request.headers.get("Authorization", "")
    return header.removeprefix(f"{scheme} ") if header.startswith(f"{scheme} ") else ""


def offset_page(items: list[T], start: int, size: int) -> tuple[list[T], str | None]:
    """`size` items from `start`, and the next page's cursor: where it starts (None: this was the last)."""
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


@dataclass
class LoopbackFake:
    """A vendor's API served over HTTP on a free loopback port."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    def routes(self) -> Iterable[web.AbstractRouteDef]:
        """The vendor's endpoints."""
        raise NotImplementedError

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """What every call passes first (a fake's auth, throttling and request log); here, nothing."""
        response: web.StreamResponse = await handler(request)
        return response

    async def start(self) -> Self:
        app = web.Application(middlewares=[self._gate])
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    async def close(self) -> None:
        if self._runner:
            await self._runner.cleanup()


@dataclass
class WebhookFake(LoopbackFake):
    """A LoopbackFake that also delivers webhooks to the server under test."""

    delivered: list[int] = field(default_factory=list)
    _tasks: set[asyncio.Future[Any]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None

    def _later(self, delivery: Awaitable[Any]) -> None:
        """Run `delivery` in the background (as the vendor does, after answering the call that caused it)."""
        task = asyncio.ensure_future(delivery)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send_webhook(self, url: str, body: bytes, headers: dict[str, str], **options: Any) -> int:
        """POST one delivery; the answer's status, also kept in `delivered` (0: no answer)."""
        assert self._session is not None
        try:
            async with self._session.post(url, data=body, headers=headers, **options) as response:
                status = response.status
        except aiohttp.ClientError:
            status = 0
        self.delivered.append(status)
        return status

    async def drain(self) -> None:
        """Wait until every delivery scheduled so far has been answered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def start(self) -> Self:
        await super().start()
        self._session = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        await self.drain()
        if self._session:
            await self._session.close()
        await super().close()
