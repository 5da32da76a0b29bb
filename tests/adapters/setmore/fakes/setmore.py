"""A loopback Setmore: the refresh-token exchange, Bearer access tokens, staff and appointments.

Documented behaviour (platform-apis.md; Setmore's Apiary docs as third-party SDKs use them): `GET
/o/oauth2/token?refreshToken=...` answering {"data": {"token": {"access_token"}}}, endpoints under
`/bookingapi/...`, answers in {"response": true, "data": ...}. Assumed, and configurable here: the
listing filters (`startDate`/`endDate` as dd-mm-yyyy, `staff_key`) and paging (`cursor`, `page_size`
appointments a page), `GET/PUT/DELETE /bookingapi/appointments/{key}`, errors as {"response": false,
"msg"}, 401 for an expired access token, 429 with Retry-After for the next `throttle` requests.
`requests` counts every call.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.adapters.fakes_kit import LoopbackFake, bearer, offset_page

__all__ = ["SetmoreFake"]


def _ok(data: Any) -> web.Response:
    return web.json_response({"response": True, "data": data})


def _error(status: int, msg: str, **headers: str) -> web.Response:
    return web.json_response({"response": False, "msg": msg}, status=status, headers=headers)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class SetmoreFake(LoopbackFake):
    refresh_token: str = "r1-setmore-test"
    page_size: int = 20
    throttle: int = 0
    staff: dict[str, dict[str, Any]] = field(default_factory=dict)
    appointments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)
    _access: set[str] = field(default_factory=set)

    def add_staff(self, key: str, first: str, last: str) -> None:
        self.staff[key] = {"key": key, "first_name": first, "last_name": last, "email_id": ""}

    def book(self, staff_key: str, start: datetime, minutes: int = 30, label: str = "Physio") -> dict[str, Any]:
        key = "a" + secrets.token_hex(6)
        self.appointments[key] = {
            "key": key, "staff_key": staff_key, "service_key": "s1", "customer_key": "c1", "label": label,
            "start_time": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ"),
            "end_time": (start + timedelta(minutes=minutes)).astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ"),
            "duration": minutes, "comment": "",
            "customer": {"key": "c1", "first_name": "Jane", "last_name": "Roe", "email_id": "jane@example.org"},
        }
        return self.appointments[key]

    def expire_access_tokens(self) -> None:
        self._access.clear()

    def calls(self, fragment: str, method: str = "GET") -> int:
        return sum(1 for m, p in self.requests if m == method and fragment in p)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/o/oauth2/token", self.token),
            web.get("/bookingapi/staffs", self.list_staff),
            web.get("/bookingapi/appointments", self.list_appointments),
            web.get("/bookingapi/appointments/{key}", self.get_appointment),
            web.put("/bookingapi/appointments/{key}", self.update),
            web.delete("/bookingapi/appointments/{key}", self.delete),
        ]

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if self.throttle > 0:
            self.throttle -= 1
            return _error(429, "Rate limit exceeded", **{"Retry-After": "2"})
        if request.path != "/o/oauth2/token":
            if bearer(request) not in self._access:
                return _error(401, "Unauthorized")
        return await handler(request)

    async def token(self, request: web.Request) -> web.Response:
        if request.query.get("refreshToken") != self.refresh_token:
            return _error(401, "Invalid refresh token")
        access = secrets.token_hex(16)
        self._access.add(access)
        return _ok({"token": {"access_token": access, "token_type": "bearer", "expires": 3600}})

    async def list_staff(self, request: web.Request) -> web.Response:
        return _ok({"staffs": list(self.staff.values())})

    async def list_appointments(self, request: web.Request) -> web.Response:
        q = request.query
        low = datetime.strptime(q["startDate"], "%d-%m-%Y").replace(tzinfo=UTC)
        high = datetime.strptime(q["endDate"], "%d-%m-%Y").replace(tzinfo=UTC) + timedelta(days=1)
        found = sorted((a for a in self.appointments.values() if low <= _parse(a["start_time"]) < high
                        and ("staff_key" not in q or a["staff_key"] == q["staff_key"])),
                       key=lambda a: (a["start_time"], a["key"]))
        page, following = offset_page(found, int(q.get("cursor", "0")), self.page_size)
        return _ok({"appointments": page, "cursor": following})

    async def get_appointment(self, request: web.Request) -> web.Response:
        found = self.appointments.get(request.match_info["key"])
        return _ok({"appointment": found}) if found else _error(404, "Appointment not found")

    async def update(self, request: web.Request) -> web.Response:
        found = self.appointments.get(request.match_info["key"])
        if found is None:
            return _error(404, "Appointment not found")
        if found["key"] in self.refuse:
            return _error(400, self.refuse[found["key"]])
        body = await request.json()
        found.update(start_time=body["start_time"], end_time=body["end_time"])
        return _ok({"appointment": found})

    async def delete(self, request: web.Request) -> web.Response:
        if self.appointments.pop(request.match_info["key"], None) is None:
            return _error(404, "Appointment not found")
        return _ok({})
