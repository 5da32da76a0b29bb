"""A loopback Acuity: calendars, appointments (listing, reschedule, cancel) and its static webhook.

Documented behaviour (platform-apis.md, Acuity section): Basic auth (401 `unauthorized` otherwise);
`GET /api/v1/appointments` with minDate/maxDate/calendarID/canceled and `max` (no cursor: the
first `max` by time); reschedule refusals in Acuity's body {"status_code", "message", "error"},
configurable per appointment (`refuse`); 429 `too_many_requests` for the next `throttle` calls, and
for a client that starts more than `per_second` requests within one second; deliveries are form posts
with ids only, signed base64 HMAC-SHA256 with the API key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

__all__ = ["AcuityFake"]


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"status_code": status, "message": message, "error": code}, status=status)


def _when(value: str) -> datetime:
    text = value if value[-3] == ":" else f"{value[:-2]}:{value[-2:]}"
    return datetime.fromisoformat(text)


@dataclass
class AcuityFake:
    user_id: str = "12345"
    api_key: str = "acuity-test-key"
    throttle: int = 0
    per_second: int = 10
    deliver: bool = True
    calendars: list[dict[str, Any]] = field(default_factory=list)
    appointments: dict[int, dict[str, Any]] = field(default_factory=dict)
    refuse: dict[int, str] = field(default_factory=dict)
    webhook_url: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)
    held: list[bytes] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    _next_id: int = 1000
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    url: str = ""

    def add_calendar(self, calendar_id: int, name: str) -> None:
        self.calendars.append({"id": calendar_id, "name": name, "email": "", "timezone": "Europe/London"})

    async def book(self, calendar_id: int, start: datetime, minutes: int = 30, *, first: str = "Jane",
                   last: str = "Roe", service: str = "Acupuncture") -> dict[str, Any]:
        self._next_id += 1
        appt = {"id": self._next_id, "calendarID": calendar_id, "appointmentTypeID": 7, "type": service,
                "firstName": first, "lastName": last, "email": f"{first.lower()}@example.org", "phone": "",
                "datetime": start.isoformat(), "duration": str(minutes), "timezone": "Europe/London",
                "notes": "", "location": "Room 2", "canceled": False, "noShow": False}
        self.appointments[appt["id"]] = appt
        await self.announce("scheduled", appt)
        return appt

    async def announce(self, action: str, appt: dict[str, Any]) -> None:
        if not self.webhook_url:
            return
        body = urlencode({"action": action, "id": appt["id"], "calendarID": appt["calendarID"],
                          "appointmentTypeID": appt["appointmentTypeID"]}).encode()
        signature = base64.b64encode(hmac.new(self.api_key.encode(), body, hashlib.sha256).digest()).decode()
        if not self.deliver:
            self.held.append(body)
            return
        task = asyncio.ensure_future(self._post(body, signature))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, body: bytes, signature: str) -> None:
        assert self._session is not None
        headers = {"X-Acuity-Signature": signature, "content-type": "application/x-www-form-urlencoded"}
        try:
            async with self._session.post(self.webhook_url, data=body, headers=headers) as response:
                self.delivered.append(response.status)
        except aiohttp.ClientError:
            self.delivered.append(0)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def start(self) -> AcuityFake:
        app = web.Application(middlewares=[self._gate])
        base = "/api/v1"
        app.add_routes([
            web.get(f"{base}/calendars", self.list_calendars),
            web.get(f"{base}/appointments", self.list_appointments),
            web.get(f"{base}/appointments/{{id}}", self.get_appointment),
            web.put(f"{base}/appointments/{{id}}/reschedule", self.reschedule),
            web.put(f"{base}/appointments/{{id}}/cancel", self.cancel),
        ])
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._session = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        await self.drain()
        if self._session:
            await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        now = time.monotonic()
        self.starts = [t for t in self.starts if now - t < 1.0] + [now]
        if self.throttle > 0 or len(self.starts) > self.per_second:
            self.throttle = max(0, self.throttle - 1)
            return _error(429, "too_many_requests", "Rate limit reached. Limit 10req/s and 20 concurrent connections.")
        auth = aiohttp.BasicAuth.decode(request.headers["Authorization"]) if "Authorization" in request.headers \
            else None
        if auth is None or auth.login != self.user_id or auth.password != self.api_key:
            return _error(401, "unauthorized", "Unauthorized")
        return await handler(request)

    async def list_calendars(self, request: web.Request) -> web.Response:
        return web.json_response(self.calendars)

    async def list_appointments(self, request: web.Request) -> web.Response:
        q = request.query
        low, high = _when(q["minDate"]), _when(q["maxDate"])
        canceled = q.get("canceled", "false") == "true"
        found = [a for a in self.appointments.values() if low <= _when(a["datetime"]) <= high
                 and a["canceled"] == canceled
                 and ("calendarID" not in q or str(a["calendarID"]) == q["calendarID"])]
        found.sort(key=lambda a: _when(a["datetime"]))
        return web.json_response(found[: int(q.get("max", "100"))])

    def _appt(self, request: web.Request) -> dict[str, Any] | None:
        raw = request.match_info["id"]
        return self.appointments.get(int(raw)) if raw.isdigit() else None

    async def get_appointment(self, request: web.Request) -> web.Response:
        appt = self._appt(request)
        if appt is None:
            return _error(404, "not_found", "Not Found. Did you mean `/appointments/{id:number}`?")
        return web.json_response(appt)

    async def reschedule(self, request: web.Request) -> web.Response:
        appt = self._appt(request)
        if appt is None:
            return _error(404, "not_found", "Not Found.")
        body = await request.json()
        if appt["id"] in self.refuse:
            code = self.refuse[appt["id"]]
            return _error(400, code, f"The appointment cannot be rescheduled ({code}).")
        if appt["canceled"]:
            return _error(400, "reschedule_canceled", "The appointment is canceled.")
        if "datetime" not in body:
            return _error(400, "required_datetime", "A datetime is required.")
        appt["datetime"] = _when(body["datetime"]).isoformat()
        await self.announce("rescheduled", appt)
        return web.json_response(appt)

    async def cancel(self, request: web.Request) -> web.Response:
        appt = self._appt(request)
        if appt is None:
            return _error(404, "not_found", "Not Found.")
        appt["canceled"] = True
        await self.announce("canceled", appt)
        return web.json_response(appt)

    async def change_on_acuity(self, appt_id: int, start: datetime) -> None:
        """A reschedule made in Acuity by the client or the clinic."""
        self.appointments[appt_id]["datetime"] = start.isoformat()
        await self.announce("rescheduled", self.appointments[appt_id])


