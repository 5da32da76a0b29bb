"""A loopback YouCanBookMe: `/v1/<account id>/profiles` and `/bookings`, Basic auth, and unsigned webhooks.

Documented behaviour is thin (platform-apis.md: `https://api.youcanbook.me/v1/{accountId}/...`, HTTP
Basic with the login and API key, bookings with `id`, `cancelled`, `createdAt`). Assumed, and kept
configurable here: the listing filters (`profileId`, `startsAfter`, `startsBefore`) and paging (`page`,
`pageSize`), the booking fields, `PATCH /bookings/{id}` with `cancelled`, 429 with Retry-After for the
next `throttle` requests, errors as {"message"}. Several accounts share one fake, so a delivery naming
another account's booking can be tried. Webhooks are posted unsigned, with a body the account shapes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from tests.adapters.fakes_kit import WebhookFake

__all__ = ["YouCanBookMeFake"]


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class YouCanBookMeFake(WebhookFake):
    account: str = "acct-1"
    login: str = "clinic@example.org"
    api_key: str = "ycbm-test-key"
    throttle: int = 0
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    bookings: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhook_url: str = ""

    def add_profile(self, profile_id: str, title: str, account: str | None = None) -> None:
        self.profiles[profile_id] = {"id": profile_id, "title": title, "accountId": account or self.account}

    async def book(self, profile_id: str, start: datetime, minutes: int = 30, *, account: str | None = None,
                   first: str = "Jane", last: str = "Roe") -> dict[str, Any]:
        booking = {"id": uuid.uuid4().hex[:12], "accountId": account or self.account, "profileId": profile_id,
                   "title": "Massage", "startsAt": start.isoformat(), "endsAt": (start + timedelta(minutes=minutes))
                   .isoformat(), "timeZone": "Europe/London", "cancelled": False, "createdAt": start.isoformat(),
                   "firstName": first, "lastName": last, "email": f"{first.lower()}@example.org", "notes": ""}
        self.bookings[booking["id"]] = booking
        if booking["accountId"] == self.account:
            self.announce({"bookingId": booking["id"], "event": "booked"})
        return booking

    def announce(self, body: dict[str, Any]) -> None:
        if self.webhook_url:
            self._later(self.post(json.dumps(body).encode()))

    async def post(self, body: bytes, url: str | None = None) -> int:
        return await self.send_webhook(url or self.webhook_url, body, {"content-type": "application/json"})

    def calls(self, fragment: str) -> int:
        return sum(1 for _, p in self.requests if fragment in p)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/{account}/profiles", self.list_profiles),
            web.get("/v1/{account}/bookings", self.list_bookings),
            web.get("/v1/{account}/bookings/{id}", self.get_booking),
            web.patch("/v1/{account}/bookings/{id}", self.patch_booking),
        ]

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if self.throttle > 0:
            self.throttle -= 1
            return _error(429, "Too many requests", **{"Retry-After": "1"})
        auth = aiohttp.BasicAuth.decode(request.headers["Authorization"]) if "Authorization" in request.headers \
            else None
        if auth is None or auth.login != self.login or auth.password != self.api_key \
                or request.match_info.get("account") != self.account:
            return _error(401, "Unauthorized")
        return await handler(request)

    async def list_profiles(self, request: web.Request) -> web.Response:
        return web.json_response([p for p in self.profiles.values() if p["accountId"] == self.account])

    async def list_bookings(self, request: web.Request) -> web.Response:
        q = request.query
        low, high = _when(q["startsAfter"]), _when(q["startsBefore"])
        page, size = int(q.get("page", "0")), int(q.get("pageSize", "50"))
        found = sorted((b for b in self.bookings.values() if b["accountId"] == self.account
                        and low <= _when(b["startsAt"]) < high
                        and ("profileId" not in q or b["profileId"] == q["profileId"])),
                       key=lambda b: b["startsAt"])
        return web.json_response(found[page * size:(page + 1) * size])

    def _booking(self, request: web.Request) -> dict[str, Any] | None:
        found = self.bookings.get(request.match_info["id"])
        return found if found is not None and found["accountId"] == self.account else None

    async def get_booking(self, request: web.Request) -> web.Response:
        booking = self._booking(request)
        return web.json_response(booking) if booking else _error(404, "Not found")

    async def patch_booking(self, request: web.Request) -> web.Response:
        booking = self._booking(request)
        if booking is None:
            return _error(404, "Not found")
        body = await request.json()
        if body.get("cancelled") is True:
            booking["cancelled"] = True
            self.announce({"bookingId": booking["id"], "event": "cancelled"})
        return web.json_response(booking)
