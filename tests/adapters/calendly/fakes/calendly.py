"""A loopback Calendly: users, organization members, scheduled events with invitees, cancellations,
webhook subscriptions, and deliveries signed as Calendly signs them.

Documented behaviour (platform-apis.md, Calendly section): lists are {collection, pagination:
{next_page_token}} (`page_size` a page); errors are {title, message}; 401 for an unknown token;
429 with X-RateLimit-Reset for the next `throttle` calls; cancel answers 201; a reschedule by the
invitee cancels the old event (invitee.canceled with rescheduled: true and new_invitee) and makes
a new one (invitee.created with old_invitee): two deliveries; a subscription answered 410 is deleted;
one whose deliveries have failed (anything but 2xx) for 24 hours is disabled (`state: disabled`):
it delivers nothing more and stays listed until it is deleted and made again. `clock` is the fake's
own time, which a test moves to see the 24 hours pass.
OAuth (`POST /oauth/token`, form): a code is good once; access tokens last `access_lifetime` s; each
refresh answers a new pair and spends the refresh token it was given, so a second use of it is
`invalid_grant` (Calendly's refresh-token rotation).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from adapters.calendly.webhooks import sign
from tests.adapters.fakes_kit import WebhookFake, offset_page

__all__ = ["CalendlyFake"]


def _error(status: int, title: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"title": title, "message": message}, status=status, headers=headers)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


@dataclass
class CalendlyFake(WebhookFake):
    token: str = "cal-token"
    page_size: int = 2
    throttle: int = 0
    deliver: bool = True
    users: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    invitees: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    held: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    client_id: str = "calendly-client"
    client_secret: str = "calendly-client-secret"
    access_lifetime: int = 7200
    codes: set[str] = field(default_factory=set)
    #: OAuth access token -> unix time it expires.
    access: dict[str, float] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)
    spent: set[str] = field(default_factory=set)
    #: Refresh grants answered (each spends one refresh token).
    refreshes: int = 0
    #: Seconds the token endpoint waits before answering (to hold two refreshes in flight together).
    token_delay: float = 0.0
    #: The token owner's role in the organization: only an owner or admin may make organization-scope
    #: subscriptions (Calendly answers 403 Permission Denied otherwise).
    owner_role: str = "owner"

    def authorize(self) -> str:
        """What Calendly's consent page does: a one-time code for the redirect."""
        code = "code-" + secrets.token_hex(4)
        self.codes.add(code)
        return code

    def _pair(self) -> dict[str, Any]:
        access, refresh = "at-" + secrets.token_hex(8), "rt-" + secrets.token_hex(8)
        self.access[access] = time.time() + self.access_lifetime
        self.refresh_tokens.add(refresh)
        return {"token_type": "Bearer", "access_token": access, "refresh_token": refresh, "scope": "default",
                "created_at": int(time.time()), "expires_in": self.access_lifetime,
                "owner": self.users[0]["uri"] if self.users else "", "organization": self.org}

    async def oauth_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client", "error_description": "Client authentication failed"},
                                     status=401)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = str(form.get("code") or "")
            if code not in self.codes:
                return web.json_response({"error": "invalid_grant", "error_description": "The code is invalid"},
                                         status=400)
            self.codes.discard(code)
            return web.json_response(self._pair())
        if grant == "refresh_token":
            refresh = str(form.get("refresh_token") or "")
            if refresh not in self.refresh_tokens:
                return web.json_response({"error": "invalid_grant", "error_description":
                                          "The provided authorization grant is invalid, expired or revoked"},
                                         status=400)
            self.refresh_tokens.discard(refresh)
            self.spent.add(refresh)
            self.refreshes += 1
            return web.json_response(self._pair())
        return web.json_response({"error": "unsupported_grant_type"}, status=400)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @property
    def org(self) -> str:
        return f"{self.url}/organizations/ORG1"

    def add_user(self, name: str) -> str:
        uri = f"{self.url}/users/U{len(self.users) + 1}"
        self.users.append({"uri": uri, "name": name, "email": f"{name.split()[0].lower()}@clinic.example",
                           "timezone": "Europe/London"})
        return uri

    def _make(self, user: str, start: datetime, minutes: int, name: str, email: str,
              old_invitee: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        event_id, invitee_id = "EV" + secrets.token_hex(5), "IN" + secrets.token_hex(5)
        event = {"uri": f"{self.url}/scheduled_events/{event_id}", "name": "Initial consultation",
                 "status": "active", "start_time": _iso(start), "end_time": _iso(start + timedelta(minutes=minutes)),
                 "event_memberships": [{"user": user}], "location": {"type": "physical", "location": "Room 1"},
                 "created_at": _iso(datetime.now(UTC)), "updated_at": _iso(datetime.now(UTC))}
        invitee = {"uri": f"{event['uri']}/invitees/{invitee_id}", "name": name, "email": email,
                   "status": "active", "timezone": "Europe/London", "event": event["uri"],
                   "rescheduled": False, "old_invitee": old_invitee, "new_invitee": None,
                   "reschedule_url": f"https://calendly.com/reschedulings/{invitee_id}",
                   "cancel_url": f"https://calendly.com/cancellations/{invitee_id}",
                   "questions_and_answers": [{"question": "Anything we should know?", "answer": "Back pain"}]}
        self.events[event_id], self.invitees[event_id] = event, invitee
        return event, invitee

    async def book(self, user: str, start: datetime, minutes: int = 30, name: str = "Jane Roe",
                   email: str = "jane@example.org") -> dict[str, Any]:
        event, invitee = self._make(user, start, minutes, name, email)
        await self.announce("invitee.created", invitee, event)
        return event

    async def reschedule_by_invitee(self, event_id: str, start: datetime) -> dict[str, Any]:
        """The client uses their reschedule link: the old event is cancelled, a new one made; two deliveries."""
        old_event, old_invitee = self.events[event_id], self.invitees[event_id]
        user = old_event["event_memberships"][0]["user"]
        minutes = int((datetime.fromisoformat(old_event["end_time"].replace("Z", "+00:00"))
                       - datetime.fromisoformat(old_event["start_time"].replace("Z", "+00:00"))).total_seconds() // 60)
        new_event, new_invitee = self._make(user, start, minutes, old_invitee["name"], old_invitee["email"],
                                            old_invitee=old_invitee["uri"])
        old_event["status"] = "canceled"
        old_invitee.update(status="canceled", rescheduled=True, new_invitee=new_invitee["uri"])
        await self.announce("invitee.canceled", old_invitee, old_event)
        await self.announce("invitee.created", new_invitee, new_event)
        return new_event

    async def submit_routing_form(self, answers: list[tuple[str, str]]) -> str:
        """Someone submits the organization's routing form: delivered to organization subscriptions only."""
        uri = f"{self.url}/routing_form_submissions/RFS{secrets.token_hex(5)}"
        payload = {"uri": uri, "routing_form": f"{self.url}/routing_forms/RF1",
                   "questions_and_answers": [{"question_uuid": f"q{n}", "question": q, "answer": a}
                                             for n, (q, a) in enumerate(answers)],
                   "tracking": {"utm_source": None}, "submitter": None, "submitter_type": None,
                   "result": {"type": "custom_message", "value": {"headline": "Thanks", "body": ""}},
                   "created_at": _iso(datetime.now(UTC)), "updated_at": _iso(datetime.now(UTC))}
        await self._announce("routing_form_submission.created", payload, None, scope="organization")
        return uri

    async def announce(self, kind: str, invitee: dict[str, Any], event: dict[str, Any]) -> None:
        user = event["event_memberships"][0]["user"]
        await self._announce(kind, {**invitee, "scheduled_event": event}, user)

    async def _announce(self, kind: str, payload: dict[str, Any], user: str | None, scope: str | None = None) -> None:
        for sub in list(self.subscriptions.values()):
            if sub["state"] != "active" or kind not in sub["events"] or sub.get("user") not in (None, user) \
                    or (scope is not None and sub.get("scope") != scope):
                continue
            body = json.dumps({"event": kind, "created_at": _iso(datetime.now(UTC)), "created_by": user,
                               "payload": payload}).encode()
            headers = {"Calendly-Webhook-Signature": sign(body, sub["signing_key"], int(time.time())),
                       "content-type": "application/json"}
            if not self.deliver:
                self.held.append((sub["callback_url"], body, headers))
                continue
            self._later(self._post(sub, body, headers))

    async def _post(self, sub: dict[str, Any], body: bytes, headers: dict[str, str]) -> None:
        status = await self.send_webhook(sub["callback_url"], body, headers, allow_redirects=False)
        if status == 410:
            self.subscriptions.pop(sub["uri"].rsplit("/", 1)[-1], None)
        elif 200 <= status < 300:
            sub.pop("failing_since", None)
        elif self.clock() - sub.setdefault("failing_since", self.clock()) >= timedelta(hours=24):
            sub["state"] = "disabled"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/users/me", self.me),
            web.get("/organization_memberships", self.memberships),
            web.get("/scheduled_events", self.list_events),
            web.get("/scheduled_events/{id}", self.get_event),
            web.get("/scheduled_events/{id}/invitees", self.list_invitees),
            web.get("/scheduled_events/{id}/invitees/{inv}", self.get_invitee),
            web.post("/scheduled_events/{id}/cancellation", self.cancel),
            web.post("/webhook_subscriptions", self.create_subscription),
            web.get("/webhook_subscriptions/{id}", self.get_subscription),
            web.delete("/webhook_subscriptions/{id}", self.delete_subscription),
            web.post("/oauth/token", self.oauth_token),
        ]

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.path.startswith("/oauth/"):
            return await handler(request)
        if self.throttle > 0:
            self.throttle -= 1
            return _error(429, "Too Many Requests", "Rate limit exceeded", headers={"X-RateLimit-Reset": "0"})
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if given != self.token and self.access.get(given, 0.0) <= time.time():
            return _error(401, "Unauthenticated", "The access token is expired or invalid")
        return await handler(request)

    def _page(self, items: list[dict[str, Any]], request: web.Request) -> web.Response:
        size = min(self.page_size, int(request.query.get("count") or self.page_size))
        page, following = offset_page(items, int(request.query.get("page_token") or 0), size)
        return web.json_response({"collection": page, "pagination": {"count": len(page), "next_page_token": following}})

    async def me(self, request: web.Request) -> web.Response:
        user = self.users[0]
        return web.json_response({"resource": {**user, "current_organization": self.org}})

    async def memberships(self, request: web.Request) -> web.Response:
        if request.query.get("organization") != self.org:
            return _error(400, "Invalid Argument", "organization is required")
        return self._page([{"user": u, "role": "user"} for u in self.users], request)

    async def list_events(self, request: web.Request) -> web.Response:
        q = request.query
        low = datetime.fromisoformat(q["min_start_time"]) if "min_start_time" in q else datetime.min.replace(tzinfo=UTC)
        high = datetime.fromisoformat(q["max_start_time"]) if "max_start_time" in q else datetime.max.replace(tzinfo=UTC)
        found = [e for e in self.events.values()
                 if low <= datetime.fromisoformat(e["start_time"].replace("Z", "+00:00")) < high
                 and ("user" not in q or e["event_memberships"][0]["user"] == q["user"])
                 and ("status" not in q or e["status"] == q["status"])]
        found.sort(key=lambda e: e["start_time"])
        return self._page(found, request)

    async def get_event(self, request: web.Request) -> web.Response:
        event = self.events.get(request.match_info["id"])
        if event is None:
            return _error(404, "Resource Not Found", "The server could not find the requested resource.")
        return web.json_response({"resource": event})

    async def list_invitees(self, request: web.Request) -> web.Response:
        invitee = self.invitees.get(request.match_info["id"])
        if invitee is None:
            return _error(404, "Resource Not Found", "The server could not find the requested resource.")
        return self._page([invitee], request)

    async def get_invitee(self, request: web.Request) -> web.Response:
        invitee = self.invitees.get(request.match_info["id"])
        if invitee is None or not invitee["uri"].endswith(request.match_info["inv"]):
            return _error(404, "Resource Not Found", "The server could not find the requested resource.")
        return web.json_response({"resource": invitee})

    async def cancel(self, request: web.Request) -> web.Response:
        event_id = request.match_info["id"]
        event = self.events.get(event_id)
        if event is None:
            return _error(404, "Resource Not Found", "The server could not find the requested resource.")
        if event["status"] == "canceled":
            return _error(403, "Permission Denied", "Event in the past or already canceled")
        body = await request.json()
        event["status"] = "canceled"
        self.invitees[event_id].update(status="canceled", cancellation={"reason": body.get("reason"),
                                                                        "canceler_type": "host"})
        await self.announce("invitee.canceled", self.invitees[event_id], event)
        return web.json_response({"resource": {"canceler_type": "host", "reason": body.get("reason")}}, status=201)

    async def create_subscription(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("scope") == "organization" and self.owner_role not in ("owner", "admin"):
            return _error(403, "Permission Denied", "You do not have permission to access this resource.")
        if "routing_form_submission.created" in body.get("events", ()) and body.get("scope") != "organization":
            return _error(400, "Invalid Argument", "routing_form_submission.created is only available for "
                                                   "organization scope")
        sub_id = "SUB" + secrets.token_hex(5)
        sub = {"uri": f"{self.url}/webhook_subscriptions/{sub_id}", "callback_url": body["url"], "state": "active",
               "events": body["events"], "scope": body.get("scope"), "user": body.get("user"),
               "organization": body.get("organization"), "signing_key": body.get("signing_key")}
        self.subscriptions[sub_id] = sub
        return web.json_response({"resource": {k: v for k, v in sub.items() if k != "signing_key"}}, status=201)

    async def get_subscription(self, request: web.Request) -> web.Response:
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return _error(404, "Resource Not Found", "The server could not find the requested resource.")
        return web.json_response({"resource": self._public(sub)})

    @staticmethod
    def _public(sub: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in sub.items() if k not in ("signing_key", "failing_since")}

    async def delete_subscription(self, request: web.Request) -> web.Response:
        if self.subscriptions.pop(request.match_info["id"], None) is None:
            return _error(404, "Resource Not Found", "The server could not find the requested resource.")
        return web.Response(status=204)
