"""A loopback Acuity: calendars, appointments (listing, reschedule, cancel), its static webhook, webhooks
made through the API (`POST /webhooks`, `GET /webhooks`, `DELETE /webhooks/{id}`, at most 25), and its
OAuth2 code flow (`POST /oauth2/token`; the access token is then a Bearer token).

Documented behaviour (platform-apis.md, Acuity section): Basic auth (401 `unauthorized` otherwise);
`GET /api/v1/appointments` with minDate/maxDate/calendarID/canceled and `max` (no cursor: the
first `max` by time); reschedule refusals in Acuity's body {"status_code", "message", "error"},
configurable per appointment (`refuse`); 429 `too_many_requests` for the next `throttle` calls, and
for a client that starts more than `per_second` requests within one second; deliveries are form posts
with ids only, signed base64 HMAC-SHA256 with the API key (for a webhook made with an OAuth token:
the OAuth client secret, which is inferred, not documented); `changed` fires on every change, beside
the specific action; a 26th webhook is refused 400; an unknown code is `invalid_grant`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from tests.adapters.fakes_kit import WebhookFake

__all__ = ["AcuityFake"]

#: The key that signs deliveries of a webhook made by this request's caller.
SIGNING_KEY = web.RequestKey("signing_key", str)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"status_code": status, "message": message, "error": code}, status=status)


def _when(value: str) -> datetime:
    text = value if value[-3] == ":" else f"{value[:-2]}:{value[-2:]}"
    return datetime.fromisoformat(text)


@dataclass
class AcuityFake(WebhookFake):
    user_id: str = "12345"
    api_key: str = "acuity-test-key"
    throttle: int = 0
    per_second: int = 10
    deliver: bool = True
    calendars: list[dict[str, Any]] = field(default_factory=list)
    appointments: dict[int, dict[str, Any]] = field(default_factory=dict)
    refuse: dict[int, str] = field(default_factory=dict)
    webhook_url: str = ""
    held: list[bytes] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    _next_id: int = 1000
    client_id: str = "acuity-client"
    client_secret: str = "acuity-client-secret"
    codes: set[str] = field(default_factory=set)
    bearer_tokens: set[str] = field(default_factory=set)
    #: Webhooks made through the API: id -> {"id", "event", "target", "status", "key"}.
    webhooks: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: The status DELETE /webhooks/{id} answers instead of deleting (a failing Acuity), or 0.
    fail_delete: int = 0

    def authorize(self) -> str:
        """What Acuity's consent page does: a one-time code for the redirect."""
        code = f"code-{len(self.codes) + 1}"
        self.codes.add(code)
        return code

    def add_calendar(self, calendar_id: int, name: str) -> None:
        self.calendars.append({"id": calendar_id, "name": name, "email": "", "timezone": "Europe/London"})

    async def book(self, calendar_id: int, start: datetime, minutes: int = 30, *, first: str = "Jane",
                   last: str = "Roe", service: str = "Acupuncture", phone: str = "") -> dict[str, Any]:
        self._next_id += 1
        appt = {"id": self._next_id, "calendarID": calendar_id, "appointmentTypeID": 7, "type": service,
                "firstName": first, "lastName": last, "email": f"{first.lower()}@example.org", "phone": phone,
                "datetime": start.isoformat(), "duration": str(minutes), "timezone": "Europe/London",
                "notes": "", "location": "Room 2", "canceled": False, "noShow": False}
        self.appointments[appt["id"]] = appt
        await self.announce("scheduled", appt)
        return appt

    async def announce(self, action: str, appt: dict[str, Any]) -> None:
        targets = [(self.webhook_url, self.api_key)] if self.webhook_url else []
        targets += [(w["target"], w["key"]) for w in self.webhooks.values()
                    if w["event"] in (f"appointment.{action}", "appointment.changed")]
        for target, key in targets:
            body = urlencode({"action": action, "id": appt["id"], "calendarID": appt["calendarID"],
                              "appointmentTypeID": appt["appointmentTypeID"]}).encode()
            signature = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
            if not self.deliver:
                self.held.append(body)
                continue
            self._later(self._post(body, signature, target))

    async def _post(self, body: bytes, signature: str, target: str = "") -> None:
        headers = {"X-Acuity-Signature": signature, "content-type": "application/x-www-form-urlencoded"}
        await self.send_webhook(target or self.webhook_url, body, headers)

    def routes(self) -> list[web.RouteDef]:
        base = "/api/v1"
        return [
            web.get(f"{base}/calendars", self.list_calendars),
            web.get(f"{base}/appointments", self.list_appointments),
            web.get(f"{base}/appointments/{{id}}", self.get_appointment),
            web.put(f"{base}/appointments/{{id}}/reschedule", self.reschedule),
            web.put(f"{base}/appointments/{{id}}/cancel", self.cancel),
            web.get(f"{base}/webhooks", self.list_webhooks),
            web.post(f"{base}/webhooks", self.create_webhook),
            web.delete(f"{base}/webhooks/{{id}}", self.delete_webhook),
            web.post("/oauth2/token", self.token),
        ]

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if request.path.startswith("/oauth2/"):
            return await handler(request)
        now = time.monotonic()
        self.starts = [t for t in self.starts if now - t < 1.0] + [now]
        if self.throttle > 0 or len(self.starts) > self.per_second:
            self.throttle = max(0, self.throttle - 1)
            return _error(429, "too_many_requests", "Rate limit reached. Limit 10req/s and 20 concurrent connections.")
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            if header.removeprefix("Bearer ") not in self.bearer_tokens:
                return _error(401, "unauthorized", "Unauthorized")
            request[SIGNING_KEY] = self.client_secret
            return await handler(request)
        auth = aiohttp.BasicAuth.decode(header) if header.startswith("Basic ") else None
        if auth is None or auth.login != self.user_id or auth.password != self.api_key:
            return _error(401, "unauthorized", "Unauthorized")
        request[SIGNING_KEY] = self.api_key
        return await handler(request)

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client", "error_description": "Unknown client"}, status=401)
        if form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        code = str(form.get("code") or "")
        if code not in self.codes:
            return web.json_response({"error": "invalid_grant", "error_description": "Invalid code"}, status=400)
        self.codes.discard(code)
        token = f"acuity-bearer-{len(self.bearer_tokens) + 1}"
        self.bearer_tokens.add(token)
        return web.json_response({"access_token": token, "token_type": "Bearer"})

    async def list_webhooks(self, request: web.Request) -> web.Response:
        return web.json_response([{k: v for k, v in w.items() if k != "key"} for w in self.webhooks.values()])

    async def create_webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("event") not in ("appointment.scheduled", "appointment.rescheduled", "appointment.canceled",
                                     "appointment.changed", "order.completed") or not body.get("target"):
            return _error(400, "invalid_webhook", "Expected an event and a target.")
        if len(self.webhooks) >= 25:
            return _error(400, "too_many_webhooks", "You can have at most 25 webhooks.")
        self._next_id += 1
        hook = {"id": self._next_id, "event": body["event"], "target": body["target"], "status": "active",
                "key": request[SIGNING_KEY]}
        self.webhooks[hook["id"]] = hook
        return web.json_response({k: v for k, v in hook.items() if k != "key"}, status=201)

    async def delete_webhook(self, request: web.Request) -> web.Response:
        if self.fail_delete:
            return _error(self.fail_delete, "server_error", "Something went wrong.")
        raw = request.match_info["id"]
        if not raw.isdigit() or self.webhooks.pop(int(raw), None) is None:
            return _error(404, "not_found", "Not Found.")
        return web.Response(status=204)

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

    async def mark_no_show(self, appt_id: int) -> None:
        """The clinic marks the client as not having come: Acuity cancels the appointment with noShow."""
        self.appointments[appt_id].update(canceled=True, noShow=True)
        await self.announce("canceled", self.appointments[appt_id])

    async def change_on_acuity(self, appt_id: int, start: datetime) -> None:
        """A reschedule made in Acuity by the client or the clinic."""
        self.appointments[appt_id]["datetime"] = start.isoformat()
        await self.announce("rescheduled", self.appointments[appt_id])


