"""A loopback Square: Bookings, booking profiles, customers, catalog, webhook subscriptions and OAuth.

Implements the documented behaviour the adapter relies on (platform-apis.md, Square section):
- `GET /v2/bookings` filters by start_at_min/max (at most 31 days apart), team member and location,
  and pages with `cursor` (`page_size` bookings a page);
- `PUT /v2/bookings/{id}` and `POST /v2/bookings/{id}/cancel` check the booking's version; a stale
  one answers `version_conflict_status` (configurable: Square does not document it) with CONFLICT;
- an idempotency key replayed with the same body returns the first answer; with another body,
  400 IDEMPOTENCY_KEY_REUSED;
- errors in Square's body {"errors": [{"category", "code", "detail"}]}; 401 ACCESS_TOKEN_EXPIRED for
  a token not granted or expired; 429 RATE_LIMITED for the next `throttle` calls (with Retry-After);
- webhook subscriptions with a signature key; every booking change is POSTed to each enabled
  subscription, signed as Square signs (base64 HMAC-SHA256 over notification URL + body), with a
  fresh event_id, and `deliver=False` holds deliveries back (lost webhooks), `duplicate` sends twice.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from adapters.square.webhooks import SIGNATURE_HEADER, sign
from tests.adapters.fakes_kit import WebhookFake, bearer, offset_page

__all__ = ["SquareFake"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _error(status: int, code: str, detail: str, category: str = "INVALID_REQUEST_ERROR",
           headers: dict[str, str] | None = None) -> web.Response:
    body = {"errors": [{"category": category, "code": code, "detail": detail}]}
    return web.json_response(body, status=status, headers=headers)


@dataclass
class Subscription:
    id: str
    notification_url: str
    signature_key: str
    event_types: list[str]
    enabled: bool = True


@dataclass
class SquareFake(WebhookFake):
    """One Square seller with team members, customers and bookings."""

    client_id: str = "sq0idp-test-client"
    client_secret: str = "sq0csp-test-secret"
    page_size: int = 2
    version_conflict_status: int = 409
    #: The next this-many API calls answer 429.
    throttle: int = 0
    retry_after: str = "0"
    deliver: bool = True
    duplicate: bool = False
    bookings: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, datetime] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)
    codes: dict[str, str] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    catalog: dict[str, str] = field(default_factory=dict)
    held: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    _idempotency: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    # --- setup ------------------------------------------------------------------------------------
    def grant(self, token: str = "sq-token", *, expires_in: timedelta = timedelta(days=30)) -> str:  # noqa: S107
        self.tokens[token] = datetime.now(UTC) + expires_in
        return token

    def add_staff(self, team_member_id: str, name: str) -> None:
        self.profiles.append({"team_member_id": team_member_id, "display_name": name, "is_bookable": True})

    def add_customer(self, customer_id: str, given: str, family: str, email: str) -> None:
        self.customers[customer_id] = {"id": customer_id, "given_name": given, "family_name": family,
                                       "email_address": email}

    def add_service(self, variation_id: str, name: str) -> None:
        self.catalog[variation_id] = name

    async def book(self, team_member_id: str, start: datetime, minutes: int = 30, *, customer_id: str = "",
                   service: str = "", note: str = "") -> dict[str, Any]:
        """A booking made by a client on Square: stored, then announced as booking.created."""
        booking_id = "bk" + secrets.token_hex(6)
        booking = {
            "id": booking_id, "version": 0, "status": "ACCEPTED", "location_id": "L1",
            "start_at": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "customer_id": customer_id,
            "customer_note": note, "seller_note": "", "created_at": _now(), "updated_at": _now(),
            "appointment_segments": [{"team_member_id": team_member_id, "service_variation_id": service,
                                      "duration_minutes": minutes, "service_variation_version": 1}],
        }
        self.bookings[booking_id] = booking
        await self.announce("booking.created", booking)
        return booking

    async def change(self, booking_id: str, **fields: Any) -> dict[str, Any]:
        """A change made on Square (by the seller or the client): version + 1, announced."""
        booking = self.bookings[booking_id]
        booking.update(fields)
        booking["version"] += 1
        booking["updated_at"] = _now()
        await self.announce("booking.updated", booking)
        return booking

    # --- webhooks ---------------------------------------------------------------------------------
    async def announce(self, kind: str, booking: dict[str, Any]) -> None:
        event_id = secrets.token_hex(16)  # one event, the same id in every subscription's delivery
        for sub in list(self.subscriptions.values()):
            if not sub.enabled or kind not in sub.event_types:
                continue
            body = json.dumps({
                "merchant_id": "M1", "location_id": booking["location_id"], "type": kind,
                "event_id": event_id, "created_at": _now(),
                "data": {"type": "booking", "id": f"{booking['id']}:{booking['version']}",
                         "object": {"booking": booking}},
            }, separators=(",", ":")).encode()
            headers = {SIGNATURE_HEADER: sign(body, sub.signature_key, sub.notification_url),
                       "content-type": "application/json", "square-environment": "Sandbox"}
            if not self.deliver:
                self.held.append((sub.notification_url, body, headers))
                continue
            for _ in range(2 if self.duplicate else 1):
                self._later(self.send_webhook(sub.notification_url, body, headers))

    # --- lifecycle --------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/oauth2/token", self.token),
            web.get("/v2/bookings", self.list_bookings),
            web.get("/v2/bookings/team-member-booking-profiles", self.list_profiles),
            web.get("/v2/bookings/{id}", self.get_booking),
            web.put("/v2/bookings/{id}", self.update_booking),
            web.post("/v2/bookings/{id}/cancel", self.cancel_booking),
            web.get("/v2/customers/{id}", self.get_customer),
            web.get("/v2/catalog/object/{id}", self.get_catalog),
            web.get("/v2/webhooks/subscriptions", self.list_subscriptions),
            web.post("/v2/webhooks/subscriptions", self.create_subscription),
            web.get("/v2/webhooks/subscriptions/{id}", self.get_subscription),
            web.delete("/v2/webhooks/subscriptions/{id}", self.delete_subscription),
        ]

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.path.startswith("/oauth2/"):
            return await handler(request)
        if self.throttle > 0:
            self.throttle -= 1
            return _error(429, "RATE_LIMITED", "This request was rate limited. Please retry later.",
                          "RATE_LIMIT_ERROR", headers={"Retry-After": self.retry_after})
        expires = self.tokens.get(bearer(request))
        if expires is None:
            return _error(401, "UNAUTHORIZED", "This request could not be authorized.", "AUTHENTICATION_ERROR")
        if expires <= datetime.now(UTC):
            return _error(401, "ACCESS_TOKEN_EXPIRED", "The access token has expired.", "AUTHENTICATION_ERROR")
        return await handler(request)

    # --- OAuth ------------------------------------------------------------------------------------
    def authorize(self) -> str:
        """What the seller's consent gives the redirect: a one-time code."""
        code = "code-" + secrets.token_hex(4)
        self.codes[code] = "M1"
        return code

    async def token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            return _error(401, "UNAUTHORIZED", "Invalid client credentials.", "AUTHENTICATION_ERROR")
        if body.get("grant_type") == "authorization_code":
            if self.codes.pop(str(body.get("code")), None) is None:
                return _error(400, "INVALID_VALUE", "The authorization code is invalid or used.")
            refresh = "rt-" + secrets.token_hex(8)
            self.refresh_tokens.add(refresh)
        elif body.get("grant_type") == "refresh_token":
            refresh = str(body.get("refresh_token"))
            if refresh not in self.refresh_tokens:
                return _error(401, "UNAUTHORIZED", "The refresh token is invalid.", "AUTHENTICATION_ERROR")
        else:
            return _error(400, "INVALID_VALUE", "Unsupported grant_type.")
        token = self.grant("at-" + secrets.token_hex(8))
        return web.json_response({"access_token": token, "token_type": "bearer", "merchant_id": "M1",
                                  "expires_at": self.tokens[token].strftime("%Y-%m-%dT%H:%M:%SZ"),
                                  "refresh_token": refresh, "short_lived": False})

    # --- bookings ---------------------------------------------------------------------------------
    def _page(self, items: list[dict[str, Any]], request: web.Request) -> tuple[list[dict[str, Any]], str | None]:
        size = min(self.page_size, int(request.query.get("limit") or self.page_size))
        return offset_page(items, int(request.query.get("cursor") or 0), size)

    async def list_bookings(self, request: web.Request) -> web.Response:
        q = request.query
        low = _time(q["start_at_min"]) if "start_at_min" in q else datetime.now(UTC)
        high = _time(q["start_at_max"]) if "start_at_max" in q else low + timedelta(days=31)
        if high - low > timedelta(days=31):
            return _error(400, "INVALID_VALUE", "The time range must be at most 31 days.")
        found = [b for b in self.bookings.values() if low <= _time(b["start_at"]) < high
                 and q.get("team_member_id", b["appointment_segments"][0]["team_member_id"])
                 == b["appointment_segments"][0]["team_member_id"]
                 and q.get("location_id", b["location_id"]) == b["location_id"]]
        found.sort(key=lambda b: (b["start_at"], b["id"]))
        page, cursor = self._page(found, request)
        return web.json_response({"bookings": page, "cursor": cursor, "errors": []})

    async def list_profiles(self, request: web.Request) -> web.Response:
        page, cursor = self._page(self.profiles, request)
        return web.json_response({"team_member_booking_profiles": page, "cursor": cursor})

    def _booking(self, request: web.Request) -> dict[str, Any] | None:
        return self.bookings.get(request.match_info["id"])

    async def get_booking(self, request: web.Request) -> web.Response:
        booking = self._booking(request)
        if booking is None:
            return _error(404, "NOT_FOUND", "Booking not found.")
        return web.json_response({"booking": booking, "errors": []})

    def _replayed(self, key: str | None, body: dict[str, Any]) -> web.Response | None:
        if not key:
            return None
        seen = self._idempotency.get(key)
        if seen is None:
            return None
        if seen[0] != json.dumps(body, sort_keys=True):
            return _error(400, "IDEMPOTENCY_KEY_REUSED", "The idempotency key was used with another request.")
        return web.json_response(seen[1])

    def _remember(self, key: str | None, body: dict[str, Any], answer: dict[str, Any]) -> None:
        if key:
            self._idempotency[key] = (json.dumps(body, sort_keys=True), json.loads(json.dumps(answer)))

    async def update_booking(self, request: web.Request) -> web.Response:
        body = await request.json()
        replay = self._replayed(body.get("idempotency_key"), {**body, "path": request.path})
        if replay is not None:
            return replay
        booking = self._booking(request)
        if booking is None:
            return _error(404, "NOT_FOUND", "Booking not found.")
        change = dict(body.get("booking") or {})
        if "version" in change and change.pop("version") != booking["version"]:
            return _error(self.version_conflict_status, "CONFLICT", "The booking version does not match.")
        if "location_id" in change and change["location_id"] != booking["location_id"]:
            return _error(400, "INVALID_VALUE", "location_id cannot be changed.")
        booking.update(change)
        booking["version"] += 1
        booking["updated_at"] = _now()
        answer = {"booking": booking, "errors": []}
        self._remember(body.get("idempotency_key"), {**body, "path": request.path}, answer)
        await self.announce("booking.updated", booking)
        return web.json_response(answer)

    async def cancel_booking(self, request: web.Request) -> web.Response:
        body = await request.json()
        replay = self._replayed(body.get("idempotency_key"), {**body, "path": request.path})
        if replay is not None:
            return replay
        booking = self._booking(request)
        if booking is None:
            return _error(404, "NOT_FOUND", "Booking not found.")
        if "booking_version" in body and body["booking_version"] != booking["version"]:
            return _error(self.version_conflict_status, "CONFLICT", "The booking version does not match.")
        booking["status"] = "CANCELLED_BY_SELLER"
        booking["version"] += 1
        answer = {"booking": booking, "errors": []}
        self._remember(body.get("idempotency_key"), {**body, "path": request.path}, answer)
        await self.announce("booking.updated", booking)
        return web.json_response(answer)

    async def get_customer(self, request: web.Request) -> web.Response:
        found = self.customers.get(request.match_info["id"])
        if found is None:
            return _error(404, "NOT_FOUND", "Customer not found.")
        return web.json_response({"customer": found})

    async def get_catalog(self, request: web.Request) -> web.Response:
        variation = request.match_info["id"]
        if variation not in self.catalog:
            return _error(404, "NOT_FOUND", "Catalog object not found.")
        return web.json_response({
            "object": {"type": "ITEM_VARIATION", "id": variation, "item_variation_data": {"name": "Regular"}},
            "related_objects": [{"type": "ITEM", "item_data": {"name": self.catalog[variation]}}],
        })

    # --- webhook subscriptions --------------------------------------------------------------------
    def _sub(self, sub: Subscription) -> dict[str, Any]:
        return {"id": sub.id, "name": "clinicbot bookings", "enabled": sub.enabled, "event_types": sub.event_types,
                "notification_url": sub.notification_url, "signature_key": sub.signature_key}

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        return web.json_response({"subscriptions": [self._sub(s) for s in self.subscriptions.values()]})

    async def create_subscription(self, request: web.Request) -> web.Response:
        body = await request.json()
        spec = body.get("subscription") or {}
        url = spec.get("notification_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://127.0.0.1")):
            return _error(400, "INVALID_VALUE", "notification_url must be an https URL.")
        sub = Subscription("wbhk_" + secrets.token_hex(6), url, secrets.token_urlsafe(16),
                           list(spec.get("event_types") or []), bool(spec.get("enabled", True)))
        self.subscriptions[sub.id] = sub
        return web.json_response({"subscription": self._sub(sub)})

    async def get_subscription(self, request: web.Request) -> web.Response:
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return _error(404, "NOT_FOUND", "Subscription not found.")
        return web.json_response({"subscription": self._sub(sub)})

    async def delete_subscription(self, request: web.Request) -> web.Response:
        if self.subscriptions.pop(request.match_info["id"], None) is None:
            return _error(404, "NOT_FOUND", "Subscription not found.")
        return web.json_response({})
