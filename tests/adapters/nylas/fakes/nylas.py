"""A loopback fake of the Nylas v3 API (aiohttp): hosted OAuth, grants, calendars, events, webhooks.

What it serves, as Nylas documents it (see /work/shared/reference/platform-apis.md, section 1):
- `GET /v3/connect/auth` (redirects to the redirect_uri with a code and the state) and
  `POST /v3/connect/token` (PKCE: the SDK's challenge, base64 of the hex SHA-256, and RFC 7636's
  S256 are both accepted), with OAuth error bodies `{error, error_code, error_description}`;
- `GET /v3/grants/{g}`; a grant is named by its id or its email; an invalid grant answers 401;
- calendars (listing paged with `limit`/`page_token`/`next_cursor`, one calendar);
- events: list (`calendar_id` required, `start`/`end`, `updated_after`, `show_cancelled`,
  `expand_recurring`, `metadata_pair` on key1..key5 only, `limit` <= 200 and page tokens), get,
  create (200, not 201), update by PUT (each nested object sent replaces the stored one, fields
  not sent stay), delete (a Google grant keeps the event as cancelled, a Microsoft one drops it);
  read-only events and calendars refuse writes;
- webhooks: create (sends `GET ?challenge=` to the URL first and is refused when the answer is
  not the raw value; the secret is answered only here and at rotation), list, get, update,
  delete, rotate-secret on both documented paths; deliveries are signed (hex HMAC-SHA256 of the
  body), sent in the background, and duplicated on demand;
- errors `{request_id, error: {type, message, provider_error}}`: 400 for a bad API key
  (`token.unauthorized_access`), 401, 404, 429 with Retry-After, injected on demand.

Times are unix seconds; `fake.advance(seconds)` moves the fake's clock (`updated_at`).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

__all__ = ["Delivery", "FakeCalendar", "Grant", "NylasError", "NylasFake", "Webhook"]

APPLICATION_ID = "app-clinicbot-test"
WRITABLE = ("title", "description", "location", "busy", "status", "when", "metadata", "participants",
            "recurrence", "visibility", "reminders", "conferencing", "hide_participants", "capacity")
INDEXED_METADATA = ("key1", "key2", "key3", "key4", "key5")
CHALLENGE_TIMEOUT = 10.0


class NylasError(Exception):
    """An API error in Nylas's shape."""

    def __init__(self, status: int, kind: str, message: str, *, provider_error: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.provider_error, self.headers = provider_error, headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.kind, "message": self.message}
        if self.provider_error is not None:
            error["provider_error"] = self.provider_error
        return {"request_id": str(uuid.uuid4()), "error": error}


@dataclass
class FakeCalendar:
    id: str
    name: str
    timezone: str = "Europe/London"
    read_only: bool = False
    primary: bool = False
    events: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Grant:
    id: str
    email: str
    provider: str = "google"
    status: str = "valid"
    calendars: dict[str, FakeCalendar] = field(default_factory=dict)


@dataclass
class Webhook:
    id: str
    url: str
    triggers: list[str]
    secret: str
    status: str = "active"
    description: str = ""


@dataclass
class Failure:
    """The next `count` grant API calls (whose path holds `path`, when given) fail this way."""

    status: int
    kind: str
    message: str
    count: int = 1
    retry_after: str | None = None
    path: str | None = None


@dataclass
class Delivery:
    webhook_id: str
    trigger: str
    delivery_id: str
    status: int | None
    body: bytes = b""


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]


def when_span(when: dict[str, Any]) -> tuple[float, float]:
    """The unix-seconds span of a stored `when`."""
    kind = when["object"]
    if kind == "timespan":
        return float(when["start_time"]), float(when["end_time"])
    if kind == "time":
        return float(when["time"]), float(when["time"])
    if kind == "date":
        day = date.fromisoformat(when["date"])
        return _utc_day(day), _utc_day(day) + 86400
    first, last = date.fromisoformat(when["start_date"]), date.fromisoformat(when["end_date"])
    return _utc_day(first), _utc_day(last) + 86400


def _utc_day(day: date) -> float:
    return float((day - date(1970, 1, 1)).days * 86400)


def normalise_when(raw: Any) -> dict[str, Any]:
    """A request's `when` with its `object` (inferred from its keys as Nylas does); 400 when unreadable."""
    if not isinstance(raw, dict):
        raise NylasError(400, "invalid_request_error", "when is required")
    when = dict(raw)
    kind = when.get("object") or ("timespan" if "start_time" in when else "time" if "time" in when
                                  else "datespan" if "start_date" in when else "date" if "date" in when else None)
    try:
        if kind == "timespan":
            start, end = int(when["start_time"]), int(when["end_time"])
            if end < start:
                raise NylasError(400, "invalid_request_error", "end_time must be after start_time")
            return {"object": "timespan", "start_time": start, "end_time": end,
                    "start_timezone": when.get("start_timezone") or "UTC",
                    "end_timezone": when.get("end_timezone") or when.get("start_timezone") or "UTC"}
        if kind == "time":
            return {"object": "time", "time": int(when["time"]), "timezone": when.get("timezone") or "UTC"}
        if kind == "date":
            return {"object": "date", "date": date.fromisoformat(when["date"]).isoformat()}
        if kind == "datespan":
            first, last = date.fromisoformat(when["start_date"]), date.fromisoformat(when["end_date"])
            if last < first:
                raise NylasError(400, "invalid_request_error", "end_date must not be before start_date")
            return {"object": "datespan", "start_date": first.isoformat(), "end_date": last.isoformat()}
    except (KeyError, TypeError, ValueError):
        pass
    raise NylasError(400, "invalid_request_error", "when is not a valid time, timespan, date or datespan")


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class NylasFake:
    """The fake's state and its aiohttp server."""

    def __init__(self) -> None:
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
        self.url = ""
        self._pages: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> NylasFake:
        app = web.Application(middlewares=[self._errors])
        g = "/v3/grants/{grant}"
        app.add_routes([
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

    async def drain(self) -> None:
        """Wait until every delivery scheduled so far was answered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

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
             path: str | None = None) -> None:
        self.failures.append(Failure(status, kind, message, count, retry_after, path))

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
                self._spawn(self._deliver(hook, trigger, delivery_id, body))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, hook: Webhook, trigger: str, delivery_id: str, body: bytes) -> None:
        record = Delivery(hook.id, trigger, delivery_id, None, body)
        self.deliveries.append(record)
        assert self._session is not None
        headers = {"Content-Type": "application/json", "X-Nylas-Signature": sign(body, hook.secret)}
        try:
            async with self._session.post(hook.url, data=body, headers=headers) as response:
                record.status = response.status
        except aiohttp.ClientError:
            record.status = None

    # --- plumbing ---------------------------------------------------------------------------------
    @web.middleware
    async def _errors(self, request: web.Request,
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
                raise NylasError(rule.status, rule.kind, rule.message, headers=headers)

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

    # --- hosted OAuth -----------------------------------------------------------------------------
    async def connect_auth(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return web.json_response({"error": "invalid_client", "error_description": "unknown client_id"}, status=400)
        if q.get("response_type") != "code" or not q.get("redirect_uri"):
            return web.json_response({"error": "invalid_request", "error_description": "response_type and "
                                      "redirect_uri are required"}, status=400)
        if q.get("code_challenge") and q.get("code_challenge_method", "").lower() != "s256":
            return web.json_response({"error": "invalid_request", "error_description": "code_challenge_method "
                                      "must be s256"}, status=400)
        email, provider = self.next_login
        grant = next((g for g in self.grants.values() if g.email == email), None)
        if grant is None:
            grant = self.add_grant(email, provider)
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"grant": grant.id, "redirect_uri": q["redirect_uri"],
                            "challenge": q.get("code_challenge"), "used": False}
        grant.status = "valid"  # signing in again revives the same grant
        target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")})
        raise web.HTTPFound(target)

    async def connect_token(self, request: web.Request) -> web.Response:
        body = await self._json(request)

        def refuse(error: str, description: str) -> web.Response:
            return web.json_response({"error": error, "error_code": 400, "error_description": description,
                                      "error_uri": "https://developer.nylas.com/docs/api/errors"}, status=400)

        if body.get("client_id") != self.client_id:
            return refuse("invalid_client", "unknown client_id")
        secret = body.get("client_secret") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        if secret != self.api_key:
            return refuse("invalid_client", "client_secret (API key) is wrong")
        if body.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type", "only authorization_code is served by this fake")
        entry = self.codes.get(str(body.get("code")))
        if entry is None or entry["used"]:
            return refuse("invalid_grant", "code is unknown, expired or already used")
        entry["used"] = True
        if body.get("redirect_uri") != entry["redirect_uri"]:
            return refuse("invalid_grant", "redirect_uri does not match")
        if entry["challenge"]:
            verifier = str(body.get("code_verifier") or "")
            digest = hashlib.sha256(verifier.encode())
            sdk = base64.b64encode(digest.hexdigest().encode()).decode().rstrip("=")
            rfc = base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")
            if not verifier or entry["challenge"] not in (sdk, rfc):
                return refuse("invalid_grant", "code_verifier does not match the code_challenge")
        grant = self.grants[entry["grant"]]
        return web.json_response({"access_token": secrets.token_urlsafe(24), "grant_id": grant.id,
                                  "expires_in": 3600, "email": grant.email, "scope": "calendar",
                                  "token_type": "Bearer", "provider": grant.provider, "id_token": "x.y.z"})

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

    # --- webhooks -------------------------------------------------------------------------------------
    @staticmethod
    def _webhook_view(hook: Webhook, *, with_secret: bool = False) -> dict[str, Any]:
        view: dict[str, Any] = {"id": hook.id, "trigger_types": hook.triggers, "webhook_url": hook.url,
                                "status": hook.status, "description": hook.description,
                                "notification_email_addresses": [], "created_at": 1700000000,
                                "updated_at": 1700000000, "status_updated_at": 1700000000}
        if with_secret:
            view["webhook_secret"] = hook.secret
        return view

    def webhook(self, request: web.Request) -> Webhook:
        hook = self.webhooks.get(request.match_info["id"])
        if hook is None:
            raise NylasError(404, "not_found_error", "webhook not found")
        return hook

    async def create_webhook(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        url, triggers = body.get("webhook_url"), body.get("trigger_types")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise NylasError(400, "invalid_request_error", "webhook_url must be an https URL")
        if not isinstance(triggers, list) or not triggers or not all(isinstance(t, str) for t in triggers):
            raise NylasError(400, "invalid_request_error", "trigger_types is required")
        challenge = secrets.token_urlsafe(16)
        assert self._session is not None
        try:
            async with self._session.get(url, params={"challenge": challenge},
                                         timeout=aiohttp.ClientTimeout(total=CHALLENGE_TIMEOUT)) as answer:
                ok = answer.status == 200 and (await answer.text()) == challenge
        except (TimeoutError, aiohttp.ClientError):
            ok = False
        if not ok:
            raise NylasError(400, "invalid_request_error",
                             "webhook_url did not answer the challenge with its value within 10 seconds")
        hook = Webhook("wh-" + secrets.token_hex(8), url, list(triggers), secrets.token_hex(32),
                       description=str(body.get("description") or ""))
        self.webhooks[hook.id] = hook
        return self._data(self._webhook_view(hook, with_secret=True))

    async def list_webhooks(self, request: web.Request) -> web.Response:
        return self._data([self._webhook_view(h) for h in self.webhooks.values()])

    async def get_webhook(self, request: web.Request) -> web.Response:
        return self._data(self._webhook_view(self.webhook(request)))

    async def update_webhook(self, request: web.Request) -> web.Response:
        hook, body = self.webhook(request), await self._json(request)
        if "trigger_types" in body:
            hook.triggers = list(body["trigger_types"])
        if "description" in body:
            hook.description = str(body["description"])
        if "status" in body:
            hook.status = str(body["status"])
        return self._data(self._webhook_view(hook))

    async def delete_webhook(self, request: web.Request) -> web.Response:
        self.webhook(request)
        del self.webhooks[request.match_info["id"]]
        return web.json_response({"request_id": str(uuid.uuid4()), "data": {"status": "success"}})

    def _rotate(self, request: web.Request, path: str) -> web.Response:
        if path not in self.rotate_paths:
            raise NylasError(404, "not_found_error", "Not Found")
        hook = self.webhook(request)
        hook.secret = secrets.token_hex(32)  # the old secret stops at once
        return self._data(self._webhook_view(hook, with_secret=True))

    async def rotate_post(self, request: web.Request) -> web.Response:
        return self._rotate(request, "post")

    async def rotate_put(self, request: web.Request) -> web.Response:
        return self._rotate(request, "put")


def timespan(start: datetime, minutes: int = 60, zone: str = "Europe/London") -> dict[str, Any]:
    """A `when` for tests: a timespan starting at the aware `start`."""
    return {"start_time": int(start.timestamp()), "end_time": int((start + timedelta(minutes=minutes)).timestamp()),
            "start_timezone": zone, "end_timezone": zone}
