"""A loopback stand-in for a chat platform's "post a message" endpoint, and a Notifier for it.

The recorder keeps every delivery with its `delivery_key` and answers "was this key delivered?",
the check a dispatcher makes for rows a dead sender left mid-send. It can be told to fail the
next N posts with 503 (and a Retry-After), like a platform having a bad minute.
Used until the fake Slack Web API is on main; `RecorderNotifier` posts to it with httpx.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from sync.runtime.notifier import DeliveryError, Notification

__all__ = ["Recorder", "RecorderNotifier"]


@dataclass
class Recorder:
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    def keys(self) -> list[str]:
        return [str(d["delivery_key"]) for d in self.deliveries]

    async def _deliver(self, request: web.Request) -> web.Response:
        try:
            doc = await request.json()
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid_json"}, status=400)
        if not isinstance(doc, dict) or not doc.get("delivery_key"):
            return web.json_response({"ok": False, "error": "missing delivery_key"}, status=400)
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response(
                {"ok": False, "error": "unavailable"}, status=503, headers={"Retry-After": "1"}
            )
        doc["received_at"] = time.time()
        self.deliveries.append(doc)
        return web.json_response({"ok": True})

    async def _delivered(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        return web.json_response({"ok": True, "delivered": key in set(self.keys())})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/deliver", self._deliver)
        app.router.add_get("/delivered", self._delivered)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class RecorderNotifier:
    """Notifier + DeliveryCheck that talks to a Recorder over HTTP."""

    def __init__(self, url: str) -> None:
        self._client = httpx.AsyncClient(base_url=url, timeout=5.0)

    async def notify(self, notification: Notification) -> None:
        body = {
            "kind": notification.kind,
            "practice_id": notification.practice_id,
            "practitioner_id": notification.practitioner_id,
            "appointment_ids": list(notification.appointment_ids),
            **notification.data,
        }
        try:
            response = await self._client.post("/deliver", json=body)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"recorder unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise DeliveryError(f"recorder answered {response.status_code}")
        if response.status_code != 200:
            raise DeliveryError(f"recorder refused: {response.status_code}", retryable=False)

    async def was_delivered(self, notification: Notification) -> bool | None:
        try:
            response = await self._client.get("/delivered", params={"key": notification.data["delivery_key"]})
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        return bool(response.json()["delivered"])
