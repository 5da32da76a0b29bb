"""A loopback TimeTap: the signed session token, staff, the appointment report and status changes.

Known (platform-apis.md, a third-party connector): `GET /appointmentList/reportWithCount` with a date
range of at most 93 days, `pageNumber`/`pageSize`, answering {"count", "data"}; times as epoch
milliseconds beside local HHmm. Assumed, and configurable here: the session request
(`/sessionToken?apiKey&timestamp&signature`, MD5 of key + private key + timestamp, timestamps older
than `skew` seconds refused), Bearer session tokens that `expire_sessions` ends, `GET /staff`,
`GET /appointment/{id}`, `PUT /appointment/{id}/status/CANCELLED`, errors as {"errorMessage"}, 429
with Retry-After for the next `throttle` requests. `requests` counts every call.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.adapters.fakes_kit import LoopbackFake, bearer

__all__ = ["TimeTapFake"]


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"errorMessage": message}, status=status, headers=headers)


@dataclass
class TimeTapFake(LoopbackFake):
    api_key: str = "310000"
    private_key: str = "timetap-private-test"
    skew: int = 300
    throttle: int = 0
    staff: list[dict[str, Any]] = field(default_factory=list)
    appointments: dict[int, dict[str, Any]] = field(default_factory=dict)
    _sessions: set[str] = field(default_factory=set)
    _next: int = 5000

    def add_staff(self, professional_id: int, name: str) -> None:
        self.staff.append({"professionalId": professional_id, "fullName": name, "timeZone": "America/New_York"})

    def book(self, professional_id: int, start: datetime, minutes: int = 30) -> dict[str, Any]:
        self._next += 1
        appt = {"calendarId": self._next, "status": "OPEN", "timeZone": "America/New_York",
                "startDateTimeEpoch": int(start.timestamp() * 1000),
                "endDateTimeEpoch": int((start + timedelta(minutes=minutes)).timestamp() * 1000),
                "clientStartTime": int(start.strftime("%H%M")), "staff": {"professionalId": professional_id},
                "client": {"firstName": "Jane", "lastName": "Roe", "emailAddress": "jane@example.org"},
                "reason": {"reasonDesc": "Chiropractic"}, "note": ""}
        self.appointments[self._next] = appt
        return appt

    def expire_sessions(self) -> None:
        self._sessions.clear()

    def calls(self, fragment: str) -> int:
        return sum(1 for _, p in self.requests if fragment in p)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/sessionToken", self.session),
            web.get("/staff", self.list_staff),
            web.get("/appointmentList/reportWithCount", self.report),
            web.get("/appointment/{id}", self.get_appointment),
            web.put("/appointment/{id}/status/{status}", self.set_status),
        ]

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if self.throttle > 0:
            self.throttle -= 1
            return _error(429, "Too many requests", **{"Retry-After": "1"})
        if request.path != "/sessionToken":
            if bearer(request) not in self._sessions:
                return _error(401, "Session token is invalid or expired")
        return await handler(request)

    async def session(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            stamp = int(q["timestamp"])
        except (KeyError, ValueError):
            return _error(400, "timestamp is required")
        expected = hashlib.md5(f"{self.api_key}{self.private_key}{stamp}".encode(), usedforsecurity=False).hexdigest()
        if q.get("apiKey") != self.api_key or q.get("signature") != expected or abs(time.time() - stamp) > self.skew:
            return _error(401, "Invalid signature")
        token = secrets.token_hex(16)
        self._sessions.add(token)
        return web.json_response({"sessionToken": token})

    async def list_staff(self, request: web.Request) -> web.Response:
        return web.json_response(self.staff)

    async def report(self, request: web.Request) -> web.Response:
        q = request.query
        low = datetime.fromisoformat(q["startDate"]).replace(tzinfo=UTC)
        high = datetime.fromisoformat(q["endDate"]).replace(tzinfo=UTC) + timedelta(days=1)
        if (high - low).days > 94:
            return _error(400, "The date range cannot exceed 93 days")
        page, size = int(q.get("pageNumber", "1")), int(q.get("pageSize", "50"))
        found = sorted((a for a in self.appointments.values()
                        if low.timestamp() * 1000 <= a["startDateTimeEpoch"] < high.timestamp() * 1000
                        and ("staffIdList" not in q or str(a["staff"]["professionalId"]) == q["staffIdList"])),
                       key=lambda a: (a["startDateTimeEpoch"], a["calendarId"]))
        return web.json_response({"count": len(found), "data": found[(page - 1) * size:page * size]})

    def _appt(self, request: web.Request) -> dict[str, Any] | None:
        raw = request.match_info["id"]
        return self.appointments.get(int(raw)) if raw.isdigit() else None

    async def get_appointment(self, request: web.Request) -> web.Response:
        appt = self._appt(request)
        return web.json_response(appt) if appt else _error(404, "Appointment not found")

    async def set_status(self, request: web.Request) -> web.Response:
        appt = self._appt(request)
        if appt is None:
            return _error(404, "Appointment not found")
        if request.match_info["status"] not in ("CANCELLED", "NO_SHOW", "COMPLETED", "OPEN"):
            return _error(400, "Unknown status")
        appt["status"] = request.match_info["status"]
        return web.json_response(appt)
