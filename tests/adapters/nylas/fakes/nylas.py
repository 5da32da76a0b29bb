"""A loopback fake of the Nylas v3 API (aiohttp): hosted OAuth, grants, calendars, events, webhooks.

What it serves, as Nylas documents it (see /work/shared/reference/platform-apis.md, section 1):
- hosted OAuth (fakes/nylas_oauth.py): `GET /v3/connect/auth` redirects back with a code, and
  `POST /v3/connect/token` (PKCE: the SDK's challenge, base64 of the hex SHA-256, and RFC 7636's
  S256 are both accepted), with OAuth error bodies `{error, error_code, error_description}`;
- `GET /v3/grants/{g}`; a grant is named by its id or its email; an invalid grant answers 401;
- calendars (listing paged with `limit`/`page_token`/`next_cursor`, one calendar);
- events: list (`calendar_id` required, `start`/`end`, `updated_after`, `show_cancelled`,
  `expand_recurring`, `metadata_pair` on key1..key5 only, `limit` <= 200 and page tokens), get,
  create (200, not 201), update by PUT (each nested object sent replaces the stored one, fields
  not sent stay), delete (a Google grant keeps the event as cancelled, a Microsoft one drops it);
  read-only events and calendars refuse writes;
- webhooks (fakes/nylas_webhooks.py): create (sends `GET ?challenge=` first; refused when the answer is
  not the raw value; the secret is answered only here and at rotation), list, get, update,
  delete, rotate-secret on both documented paths; deliveries are signed (hex HMAC-SHA256 of the
  body), sent in the background, and duplicated on demand;
- errors `{request_id, error: {type, message, provider_error}}`: 400 for a bad API key
  (`token.unauthorized_access`), 401, 404, 429 with Retry-After, injected on demand.

Times are unix seconds; `fake.advance(seconds)` moves the fake's clock (`updated_at`).
"""

from __future__ import annotations

import copy
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.adapters.fakes_kit import WebhookFake
from tests.adapters.nylas.fakes.nylas_oauth import OAuthRoutes
from tests.adapters.nylas.fakes.nylas_store import (
    Delivery,
    Failure,
    FakeCalendar,
    Grant,
    NylasError,
    Recorded,
    Webhook,
    normalise_when,
    sign,
    timespan,
    when_span,
)
from tests.adapters.nylas.fakes.nylas_webhooks import WebhookRoutes

__all__ = ["Delivery", "FakeCalendar", "Grant", "NylasError", "NylasFake", "Webhook", "timespan"]

APPLICATION_ID = "app-clinicbot-test"
WRITABLE = ("title", "description", "location", "busy", "status", "when", "metadata", "participants",
            "recurrence", "visibility", "reminders", "conferencing", "hide_participants", "capacity")
INDEXED_METADATA = ("key1", "key2", "key3", "key4", "key5")


class NylasFake(OAuthRoutes, WebhookRoutes, WebhookFake):
    """The fake's state and its aiohttp server (served and delivering webhooks through fakes_kit)."""

    def __init__(self) -> None:
        super().__init__()
        self.api_key = "nyk_test_" + secrets.token_hex(8)
        self.client_id = "client-" + secrets.token_hex(6)
        self.grants: dict[str, Grant] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.failures: list[Failure] = []
        self.requests: list[Recorded] = []
        self.deliveries: list[Delivery] = []
        #: Send every delivery twice (Nylas delivers at least once).
        self.duplicate_deliveries = False
        #: Webhooks are sent for API writes and for hand edits.
        self.notify_changes = True
        #: Which rotate-secret paths this Nylas answers ("post": the API reference's, "put": the SDK's).
        self.rotate_paths = {"post", "put"}
        #: Who signs in at /v3/connect/auth next (email, provider).
        self.next_login = ("dr.lee@work.example", "google")
        self.clock_offset = 0.0
        self._pages: dict[str, dict[str, Any]] = {}

    # --- lifecycle --------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        g = "/v3/grants/{grant}"
        return [
            web.get("/v3/connect/auth", self.connect_auth),
            web.post("/v3/connect/token", self.connect_token),
            web.get(g, self.get_grant),
            web.get(f"{g}/calendars", self.list_calendars),
            web.get(f"{g}/calendars/{{cal}}", self.get_calendar),
            web.get(f"{g}/events", self.list_events),
            web.post(f"{g}/events", self.create_event),
            web.get(f"{g}/events/{{id}}", self.get_event),
            web.put(f"{g}/events/{{id}}", self.update_event),
            web.delete(f"{g}/events/{{id}}", self.delete_event),
            web.post("/v3/webhooks", self.create_webhook),
            web.get("/v3/webhooks", self.list_webhooks),
            web.post("/v3/webhooks/rotate-secret/{id}", self.rotate_post),
            web.get("/v3/webhooks/{id}", self.get_webhook),
            web.put("/v3/webhooks/{id}", self.update_webhook),
            web.delete("/v3/webhooks/{id}", self.delete_webhook),
            web.put("/v3/webhooks/{id}/rotate-secret", self.rotate_put),
        ]

    # --- test controls ---------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        self.clock_offset += seconds

    def add_grant(self, email: str, provider: str = "google", *, calendars: int = 1) -> Grant:
        grant = Grant(str(uuid.uuid4()), email, provider)
        self.grants[grant.id] = grant
        for n in range(calendars):
            self.add_calendar(grant, f"cal-{n}-{secrets.token_hex(4)}", "Work" if n == 0 else f"Shared {n}",
                              primary=n == 0)
        return grant

    def add_calendar(self, grant: Grant, cal_id: str, name: str, *, read_only: bool = False,
                     primary: bool = False, timezone: str = "Europe/London") -> FakeCalendar:
        cal = FakeCalendar(cal_id, name, timezone, read_only, primary)
        grant.calendars[cal_id] = cal
        return cal

    def fail(self, status: int, kind: str, message: str, *, count: int = 1, retry_after: str | None = None,
             path: str | None = None, provider_error: dict[str, Any] | None = None) -> None:
        self.failures.append(Failure(status, kind, message, count, retry_after, path, provider_error))

    def expire_grant(self, grant: Grant) -> None:
        """The person's sign-in expired: calls answer 401, and grant.expired is sent."""
        grant.status = "invalid"
        self.notify("grant.expired", grant, {"code": 25009, "grant_id": grant.id, "integration_id": "int-1",
                                             "provider": grant.provider, "email": grant.email,
                                             "grant_updated_at": int(self.now())}, source="/nylas/system")

    def server_add(self, grant: Grant, cal_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """An event made by a person in their calendar (notified like any change)."""
        return self._create(grant, grant.calendars[cal_id], copy.deepcopy(fields))

    def server_edit(self, grant: Grant, cal_id: str, event_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self._update(grant, grant.calendars[cal_id], event_id, copy.deepcopy(changes), check_read_only=False)

    def server_delete(self, grant: Grant, cal_id: str, event_id: str) -> None:
        self._delete(grant, grant.calendars[cal_id], event_id, check_read_only=False)

    def live_events(self, grant: Grant, cal_id: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in grant.calendars[cal_id].events.items() if v.get("status") != "cancelled"}

    def notify(self, trigger: str, grant: Grant, obj: dict[str, Any], *, source: str = "/google/events/realtime",
               twice: bool = False) -> None:
        """Send `trigger` to every active webhook that asked for it, signed, in the background."""
        delivery_id = str(uuid.uuid4())
        envelope = {"specversion": "1.0", "type": trigger, "source": source, "id": delivery_id,
                    "time": int(self.now()), "webhook_delivery_attempt": 1,
                    "data": {"application_id": APPLICATION_ID, "object": {**obj, "grant_id": grant.id}}}
        body = json.dumps(envelope).encode()
        for hook in list(self.webhooks.values()):
            if hook.status != "active" or trigger.removesuffix(".transformed") not in hook.triggers:
                continue
            for _ in range(2 if twice or self.duplicate_deliveries else 1):
                self._later(self._deliver(hook, trigger, delivery_id, body))

    async def _deliver(self, hook: Webhook, trigger: str, delivery_id: str, body: bytes) -> None:
        record = Delivery(hook.id, trigger, delivery_id, None, body)
        self.deliveries.append(record)
        headers = {"Content-Type": "application/json", "X-Nylas-Signature": sign(body, hook.secret)}
        record.status = await self.send_webhook(hook.url, body, headers) or None  # 0: no answer

    # --- plumbing ---------------------------------------------------------------------------------
    @web.middleware
    async def _gate(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            self.requests.append(Recorded(request.method, request.path, dict(request.query)))
            if request.path.startswith(("/v3/grants", "/v3/webhooks")):
                self._authorize(request)
            if request.path.startswith("/v3/grants/"):
                self._maybe_fail(request)
            return await handler(request)
        except NylasError as err:
            return web.json_response(err.body(), status=err.status, headers=err.headers)

    def _authorize(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise NylasError(400, "token.unauthorized_access", "Invalid API key")

    def _maybe_fail(self, request: web.Request) -> None:
        for rule in self.failures:
            if rule.count > 0 and (rule.path is None or rule.path in request.path):
                rule.count -= 1
                headers = {"Retry-After": rule.retry_after} if rule.retry_after else {}
                raise NylasError(rule.status, rule.kind, rule.message, headers=headers,
                                 provider_error=rule.provider_error)

    def grant(self, request: web.Request) -> Grant:
        ref = request.match_info["grant"]
        ref = ref.removeprefix("grant:").removeprefix("email:")
        grant = self.grants.get(ref) or next((g for g in self.grants.values() if g.email == ref), None)
        if grant is None:
            raise NylasError(404, "not_found_error", "grant not found")
        if grant.status == "invalid" and request.path.rstrip("/") != f"/v3/grants/{request.match_info['grant']}":
            raise NylasError(401, "unauthorized", "Unauthorized",
                             provider_error={"code": 401, "message": "invalid_grant: Token has been expired or revoked."})
        return grant

    @staticmethod
    def calendar(grant: Grant, cal_id: str | None) -> FakeCalendar:
        if not cal_id:
            raise NylasError(400, "invalid_request_error", "calendar_id is required")
        cal = grant.calendars.get(cal_id)
        if cal is None and cal_id == "primary":
            cal = next((c for c in grant.calendars.values() if c.primary), None)
        if cal is None:
            raise NylasError(404, "not_found_error", "calendar not found")
        return cal

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise NylasError(400, "invalid_request_error", "body is not valid JSON") from None
        if not isinstance(body, dict):
            raise NylasError(400, "invalid_request_error", "body is not a JSON object")
        return body

    @staticmethod
    def _data(data: Any) -> web.Response:
        return web.json_response({"request_id": str(uuid.uuid4()), "data": data})

    def _page(self, kind: str, items: list[dict[str, Any]], request: web.Request, maximum: int) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            raise NylasError(400, "invalid_request_error", "limit must be a number") from None
        if not 1 <= limit <= maximum:
            raise NylasError(400, "invalid_request_error", f"limit must be between 1 and {maximum}")
        offset = 0
        if "page_token" in q:
            page = self._pages.get(q["page_token"])
            if page is None or page["kind"] != kind:
                raise NylasError(400, "invalid_request_error", "invalid page_token")
            items, offset = page["items"], page["offset"]
        body: dict[str, Any] = {"request_id": str(uuid.uuid4()), "data": items[offset:offset + limit]}
        if offset + limit < len(items):
            token = secrets.token_urlsafe(12)
            self._pages[token] = {"kind": kind, "items": items, "offset": offset + limit}
            body["next_cursor"] = token
        return web.json_response(body)

    # --- grants and calendars ---------------------------------------------------------------------
    def _grant_view(self, grant: Grant) -> dict[str, Any]:
        return {"id": grant.id, "provider": grant.provider, "grant_status": grant.status, "email": grant.email,
                "scope": ["calendar"], "created_at": 1700000000, "updated_at": int(self.now())}

    async def get_grant(self, request: web.Request) -> web.Response:
        return self._data(self._grant_view(self.grant(request)))

    @staticmethod
    def _calendar_view(grant: Grant, cal: FakeCalendar) -> dict[str, Any]:
        return {"id": cal.id, "grant_id": grant.id, "object": "calendar", "name": cal.name,
                "timezone": cal.timezone, "read_only": cal.read_only, "is_primary": cal.primary,
                "is_owned_by_user": not cal.read_only}

    async def list_calendars(self, request: web.Request) -> web.Response:
        grant = self.grant(request)
        items = [self._calendar_view(grant, c) for c in grant.calendars.values()]
        return self._page(f"cal:{grant.id}", items, request, 200)

    async def get_calendar(self, request: web.Request) -> web.Response:
        grant = self.grant(request)
        return self._data(self._calendar_view(grant, self.calendar(grant, request.match_info["cal"])))

    # --- events -------------------------------------------------------------------------------------
    async def list_events(self, request: web.Request) -> web.Response:
        grant = self.grant(request)
        q = request.query
        cal = self.calendar(grant, q.get("calendar_id"))
        if "page_token" in q:
            return self._page(f"ev:{cal.id}", [], request, 200)
        try:
            lo = float(q.get("start", self.now()))
            hi = float(q.get("end", self.now() + 31 * 86400))
            updated_after = float(q["updated_after"]) if "updated_after" in q else None
        except ValueError:
            raise NylasError(400, "invalid_request_error", "start, end and updated_after are unix seconds") from None
        meta_key = meta_value = None
        if "metadata_pair" in q:
            meta_key, _, meta_value = q["metadata_pair"].partition(":")
            if meta_key not in INDEXED_METADATA:
                raise NylasError(400, "invalid_request_error", "metadata_pair works on key1..key5 only")
            other = {"title", "description", "location", "ical_uid", "busy", "attendees"} & set(q)
            if other:
                raise NylasError(400, "invalid_request_error", "metadata_pair cannot be combined with "
                                 + ", ".join(sorted(other)))
        expand = q.get("expand_recurring") == "true"
        show_cancelled = q.get("show_cancelled") == "true"
        found = []
        for event in sorted(cal.events.values(), key=lambda e: (e["updated_at"], e["id"])):
            if event.get("status") == "cancelled" and not show_cancelled:
                continue
            is_master = bool(event.get("recurrence")) and not event.get("master_event_id")
            if expand and is_master:
                continue
            if not expand and event.get("master_event_id"):
                continue
            start, end = when_span(event["when"])
            if not (start < hi and (end > lo or (start == end and start >= lo))):
                continue
            if updated_after is not None and event["updated_at"] <= updated_after:
                continue
            if meta_key is not None and (event.get("metadata") or {}).get(meta_key) != meta_value:
                continue
            found.append(copy.deepcopy(event))
        if "select" in q:  # only the fields asked for (the id always)
            fields = {f.strip() for f in q["select"].split(",")} | {"id"}
            found = [{k: v for k, v in e.items() if k in fields} for e in found]
        return self._page(f"ev:{cal.id}", found, request, 200)

    async def get_event(self, request: web.Request) -> web.Response:
        grant = self.grant(request)
        cal = self.calendar(grant, request.query.get("calendar_id"))
        event = cal.events.get(request.match_info["id"])
        if event is None:
            raise NylasError(404, "not_found_error", "requested object not found")
        return self._data(copy.deepcopy(event))

    async def create_event(self, request: web.Request) -> web.Response:
        grant = self.grant(request)
        cal = self.calendar(grant, request.query.get("calendar_id"))
        if cal.read_only:
            raise NylasError(403, "forbidden", "calendar is read-only")
        return self._data(self._create(grant, cal, await self._json(request)))

    def _create(self, grant: Grant, cal: FakeCalendar, body: dict[str, Any]) -> dict[str, Any]:
        event_id = body.pop("id", None) or secrets.token_hex(13)
        event: dict[str, Any] = {"title": "", "description": "", "location": "", "busy": True, "status": "confirmed",
                                 "metadata": {}, "participants": [], "read_only": False}
        event.update({k: v for k, v in body.items() if k in WRITABLE or k in ("read_only", "master_event_id",
                                                                             "original_start_time", "ical_uid")})
        event["when"] = normalise_when(body.get("when"))
        self._check_metadata(event["metadata"])
        now = int(self.now())
        event.update(id=event_id, grant_id=grant.id, calendar_id=cal.id, object="event", created_at=now,
                     updated_at=now)
        event.setdefault("ical_uid", f"{event_id}@fake.nylas")
        cal.events[event_id] = event
        if self.notify_changes:
            self.notify("event.created", grant, copy.deepcopy(event))
        return copy.deepcopy(event)

    @staticmethod
    def _check_metadata(meta: Any) -> None:
        if not isinstance(meta, dict) or len(meta) > 50:
            raise NylasError(400, "invalid_request_error", "metadata holds at most 50 pairs")
        if any(not isinstance(v, str) or len(v) > 500 for v in meta.values()):
            raise NylasError(400, "invalid_request_error", "metadata values are text of at most 500 characters")

    async def update_event(self, request: web.Request) -> web.Response:
        grant = self.grant(request)
        cal = self.calendar(grant, request.query.get("calendar_id"))
        return self._data(self._update(grant, cal, request.match_info["id"], await self._json(request)))

    def _update(self, grant: Grant, cal: FakeCalendar, event_id: str, body: dict[str, Any], *,
                check_read_only: bool = True) -> dict[str, Any]:
        event = cal.events.get(event_id)
        if event is None or (event.get("status") == "cancelled" and check_read_only):
            raise NylasError(404, "not_found_error", "requested object not found")
        if check_read_only and (event.get("read_only") or cal.read_only):
            raise NylasError(400, "invalid_request_error", "The event is read-only and cannot be updated")
        for key, value in body.items():
            if key in WRITABLE:
                # PUT replaces each nested object it is sent; fields not sent stay as they were.
                event[key] = normalise_when(value) if key == "when" else copy.deepcopy(value)
        self._check_metadata(event.get("metadata", {}))
        event["updated_at"] = max(int(self.now()), int(event["updated_at"]) + 1)
        if self.notify_changes:
            self.notify("event.updated", grant, copy.deepcopy(event))
        return copy.deepcopy(event)

    async def delete_event(self, request: web.Request) -> web.Response:
        grant = self.grant(request)
        cal = self.calendar(grant, request.query.get("calendar_id"))
        self._delete(grant, cal, request.match_info["id"])
        return web.json_response({"request_id": str(uuid.uuid4())})

    def _delete(self, grant: Grant, cal: FakeCalendar, event_id: str, *, check_read_only: bool = True) -> None:
        event = cal.events.get(event_id)
        if event is None or event.get("status") == "cancelled":
            raise NylasError(404, "not_found_error", "requested object not found")
        if check_read_only and (event.get("read_only") or cal.read_only):
            raise NylasError(400, "invalid_request_error", "The event is read-only and cannot be deleted")
        if grant.provider == "google":
            # Google moves it to the trash: readable with show_cancelled.
            event["status"] = "cancelled"
            event["updated_at"] = max(int(self.now()), int(event["updated_at"]) + 1)
        else:
            del cal.events[event_id]
        if self.notify_changes:
            self.notify("event.deleted", grant, {"id": event_id, "calendar_id": cal.id, "object": "event",
                                                 "master_event_id": event.get("master_event_id")})


