"""A loopback fake of the Google Calendar API v3 and Google's OAuth 2.0 endpoints (aiohttp).

It serves, on one random 127.0.0.1 port, what clinicbot's Google adapter uses, with the documented
behaviour and errors (see tests/adapters/google/fakes/google_store.py for the event rules):
- calendarList.list; events.list with pageToken/nextPageToken, syncToken (nextSyncToken on the
  last page only; timeMin/timeMax & co. rejected with 400; 410 fullSyncRequired when invalidated),
  showDeleted, iCalUID and privateExtendedProperty filters;
- events.insert/get/patch/update/delete with If-Match (412), client ids (409), sendUpdates recorded;
- events.watch and channels.stop, with notifications POSTed to the channel address;
- freeBusy; 401 for missing or expired access tokens; throttles (403 rate limits, 429) on demand;
- /o/oauth2/v2/auth, /token (PKCE) and /revoke (tests/adapters/google/fakes/google_oauth.py);
- Drive's files.get (metadata, alt=media) and files.export for events' attachments, behind the
  Drive read scope (tests/adapters/google/fakes/google_drive.py).

Point Settings.google_api_url, google_drive_url, google_oauth_url and google_auth_url
(+ "/o/oauth2/v2/auth") at `fake.url`. Notification deliveries run in the background; `await fake.drain()` waits for them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from tests.adapters.fakes_kit import WebhookFake
from tests.adapters.google.fakes.google_drive import DriveFake
from tests.adapters.google.fakes.google_oauth import AccessToken, OAuthFake
from tests.adapters.google.fakes.google_store import (
    ApiError,
    CalendarState,
    bad_request,
    event_time,
    is_valid_event_id,
    parse_rfc3339,
    rfc3339,
)

__all__ = ["Channel", "Delivery", "GoogleFake", "Throttle"]

SYNC_RESTRICTED = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
WRITABLE = (
    "summary",
    "description",
    "location",
    "start",
    "end",
    "status",
    "transparency",
    "recurrence",
    "extendedProperties",
    "colorId",
    "visibility",
    "reminders",
    "attendees",
    "iCalUID",
    "originalStartTime",
    "recurringEventId",
    "sequence",
    "attachments",
)
BASE32HEX = "0123456789abcdefghijklmnopqrstuv"


@dataclass
class Throttle:
    """The next `count` API requests (matching `path` when given) fail with a rate-limit error."""

    count: int
    status: int = 403
    reason: str = "rateLimitExceeded"
    retry_after: str | None = None
    path: str | None = None


@dataclass
class Channel:
    id: str
    calendar_id: str
    resource_id: str
    address: str
    token: str | None
    expiration: datetime
    message_number: int = 0
    stopped: bool = False


@dataclass
class Delivery:
    channel_id: str
    state: str
    message_number: int
    status: int | None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    if_match: str | None


class GoogleFake(WebhookFake):
    """The fake's state and its aiohttp server (served and delivering webhooks through fakes_kit)."""

    def __init__(self) -> None:
        super().__init__()
        self.clock_offset = timedelta()
        self.oauth = OAuthFake(now=self.now)
        self.drive = DriveFake()
        self.calendars: dict[str, CalendarState] = {}
        self.pages: dict[str, Any] = {}
        self.channels: dict[str, Channel] = {}
        self.deliveries: list[Delivery] = []
        self.throttles: list[Throttle] = []
        self.requests: list[Recorded] = []
        #: (method, event id, sendUpdates value or None) for every write.
        self.send_updates: list[tuple[str, str, str | None]] = []
        #: Real Google only notifies https addresses; loopback tests use http.
        self.allow_http_webhooks = True
        self.default_page_size = 250
        self.add_calendar("primary-owner@example.org", "Dr Lee", time_zone="Europe/London", primary=True)

    # --- lifecycle --------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        base = "/calendar/v3"
        return [
            *self.oauth.routes(),
            *self.drive.routes(),
            web.get(f"{base}/users/me/calendarList", self.calendar_list),
            web.post(f"{base}/calendars/{{cal}}/events/watch", self.watch),
            web.get(f"{base}/calendars/{{cal}}/events", self.list_events),
            web.post(f"{base}/calendars/{{cal}}/events", self.insert),
            web.get(f"{base}/calendars/{{cal}}/events/{{id}}", self.get),
            web.patch(f"{base}/calendars/{{cal}}/events/{{id}}", self.patch),
            web.put(f"{base}/calendars/{{cal}}/events/{{id}}", self.update),
            web.delete(f"{base}/calendars/{{cal}}/events/{{id}}", self.delete),
            web.post(f"{base}/channels/stop", self.stop_channel),
            web.post(f"{base}/freeBusy", self.free_busy),
        ]

    # --- test controls ---------------------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    def advance(self, seconds: float) -> None:
        self.clock_offset += timedelta(seconds=seconds)

    def add_calendar(
        self,
        cal_id: str,
        summary: str,
        *,
        time_zone: str = "UTC",
        access_role: str = "owner",
        primary: bool = False,
    ) -> CalendarState:
        state = CalendarState(
            id=cal_id, summary=summary, time_zone=time_zone, access_role=access_role, primary=primary
        )
        self.calendars[cal_id] = state
        return state

    def throttle(
        self,
        count: int,
        status: int = 403,
        reason: str = "rateLimitExceeded",
        retry_after: str | None = None,
        path: str | None = None,
    ) -> None:
        self.throttles.append(Throttle(count, status, reason, retry_after, path))

    def server_insert(self, cal_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create an event as a person in the Google Calendar UI would (no auth, notifies)."""
        return self._insert(self.calendar(cal_id), copy.deepcopy(body))

    def server_patch(self, cal_id: str, event_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self._patch(self.calendar(cal_id), event_id, copy.deepcopy(changes), None, replace=False)

    def server_delete(self, cal_id: str, event_id: str) -> None:
        self._delete(self.calendar(cal_id), event_id, None)

    def calendar(self, cal_id: str) -> CalendarState:
        if cal_id == "primary":
            cal_id = next((c.id for c in self.calendars.values() if c.primary), cal_id)
        try:
            return self.calendars[cal_id]
        except KeyError:
            raise ApiError(404, "notFound", "Not Found") from None

    # --- plumbing ---------------------------------------------------------------------------------
    @web.middleware
    async def _gate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            if request.path.startswith(("/calendar/", "/drive/")):
                self._record(request)
                token = self._authorize(request)
                self._maybe_throttle(request)
                if request.path.startswith("/drive/"):
                    self.drive.check_scope(token)
            return await handler(request)
        except ApiError as err:
            return web.json_response(err.body(), status=err.status, headers=err.headers)

    def _record(self, request: web.Request) -> None:
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        self.requests.append(Recorded(request.method, request.path, query, request.headers.get("If-Match")))

    def _authorize(self, request: web.Request) -> AccessToken:
        token = self.oauth.check_bearer(request.headers.get("Authorization"))
        if token is None:
            raise ApiError(
                401,
                "authError",
                "Invalid Credentials",
                location_type="header",
                location="Authorization",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        return token

    def _maybe_throttle(self, request: web.Request) -> None:
        for rule in self.throttles:
            if rule.count > 0 and (rule.path is None or rule.path in request.path):
                rule.count -= 1
                message = (
                    "User Rate Limit Exceeded"
                    if rule.reason == "userRateLimitExceeded"
                    else "Rate Limit Exceeded"
                )
                headers = {"Retry-After": rule.retry_after} if rule.retry_after else {}
                raise ApiError(rule.status, rule.reason, message, domain="usageLimits", headers=headers)

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "parseError", "Parse Error") from None
        if not isinstance(body, dict):
            raise ApiError(400, "parseError", "Parse Error")
        return body

    # --- calendarList ------------------------------------------------------------------------------
    async def calendar_list(self, request: web.Request) -> web.Response:
        items = [
            {
                "kind": "calendar#calendarListEntry",
                "etag": f'"{c.generation}"',
                "id": c.id,
                "summary": c.summary,
                "timeZone": c.time_zone,
                "accessRole": c.access_role,
                **({"primary": True} if c.primary else {}),
            }
            for c in self.calendars.values()
        ]
        size = int(request.query.get("maxResults", "100"))
        offset = int(request.query.get("pageToken", "0") or 0)
        body: dict[str, Any] = {
            "kind": "calendar#calendarList",
            "etag": '"list"',
            "items": items[offset : offset + size],
        }
        if offset + size < len(items):
            body["nextPageToken"] = str(offset + size)
        return web.json_response(body)

    # --- events.list -----------------------------------------------------------------------------------
    async def list_events(self, request: web.Request) -> web.Response:
        cal = self.calendar(request.match_info["cal"])
        q = request.query
        if q.get("singleEvents") == "true":
            raise bad_request("This fake keeps series unexpanded; singleEvents=true is not served.")
        try:
            size = min(2500, int(q.get("maxResults", self.default_page_size)))
        except ValueError:
            raise bad_request("Invalid value for: maxResults", location="maxResults") from None
        if size < 1:
            raise bad_request("Invalid value for: maxResults", location="maxResults")
        if "pageToken" in q:
            cursor = self.pages.get(q["pageToken"])
            if cursor is None or cursor["cal"] != cal.id or cursor["sync"] != ("syncToken" in q):
                raise bad_request("Invalid page token value.", location="pageToken")
        else:
            cursor = self._new_listing(cal, q)
        ids: list[str] = cursor["ids"]
        start = cursor["offset"]
        page = ids[start : start + size]
        items = [self._render(cal, cal.events[i].resource, cursor["sync"]) for i in page]
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"{cal.seq}"',
            "summary": cal.summary,
            "updated": rfc3339(self.now()),
            "timeZone": cal.time_zone,
            "accessRole": cal.access_role,
            "defaultReminders": [],
            "items": items,
        }
        if start + size < len(ids):
            token = secrets.token_urlsafe(16)
            self.pages[token] = {**cursor, "offset": start + size}
            body["nextPageToken"] = token
        else:
            body["nextSyncToken"] = cal.sync_token(cursor["seq"])
        return web.json_response(body)

    def _new_listing(self, cal: CalendarState, q: Any) -> dict[str, Any]:
        show_deleted = q.get("showDeleted") == "true"
        if "syncToken" in q:
            restricted = [p for p in SYNC_RESTRICTED if p in q]
            if restricted or q.get("showDeleted") == "false":
                raise bad_request(
                    "Sync token cannot be used with other request restrictions.",
                    reason="syncTokenWithRequestRestrictions",
                    location=(restricted or ["showDeleted"])[0],
                )
            since = cal.read_sync_token(q["syncToken"])
            ordered = sorted((s.seq, i) for i, s in cal.events.items() if s.seq > since)
            return {"cal": cal.id, "ids": [i for _, i in ordered], "offset": 0, "seq": cal.seq, "sync": True}
        lo = parse_rfc3339(q["timeMin"], "timeMin") if "timeMin" in q else None
        hi = parse_rfc3339(q["timeMax"], "timeMax") if "timeMax" in q else None
        if lo and hi and hi <= lo:
            raise ApiError(
                400,
                "timeRangeEmpty",
                "The specified time range is empty.",
                domain="calendar",
                location_type="parameter",
                location="timeMax",
            )
        wanted_props = [p.partition("=") for p in q.getall("privateExtendedProperty", [])]
        ids = []
        for event_id, stored in sorted(cal.events.items(), key=lambda kv: kv[1].seq):
            r = stored.resource
            if r["status"] == "cancelled" and not show_deleted:
                # Cancelled instances of a live series stay listed (showDeleted and singleEvents false).
                master = cal.master_of(r)
                if master is None or master["status"] == "cancelled":
                    continue
            if "iCalUID" in q and r.get("iCalUID") != q["iCalUID"]:
                continue
            private = r.get("extendedProperties", {}).get("private", {})
            if any(private.get(k) != v for k, _, v in wanted_props):
                continue
            if r["status"] != "cancelled" and not cal.overlaps(r, lo, hi):
                continue
            ids.append(event_id)
        return {"cal": cal.id, "ids": ids, "offset": 0, "seq": cal.seq, "sync": False}

    @staticmethod
    def _render(cal: CalendarState, resource: dict[str, Any], incremental: bool) -> dict[str, Any]:
        if incremental and resource["status"] == "cancelled":
            keep = ("kind", "etag", "id", "status", "recurringEventId", "originalStartTime")
            return {k: resource[k] for k in keep if k in resource}
        return resource

    # --- events: single-item methods ------------------------------------------------------------------
    async def insert(self, request: web.Request) -> web.Response:
        cal = self.calendar(request.match_info["cal"])
        body = await self._json(request)
        self.send_updates.append(("insert", str(body.get("id", "")), request.query.get("sendUpdates")))
        return web.json_response(self._insert(cal, body))

    async def get(self, request: web.Request) -> web.Response:
        cal = self.calendar(request.match_info["cal"])
        return web.json_response(cal.get(request.match_info["id"]))

    async def patch(self, request: web.Request) -> web.Response:
        return await self._modify(request, replace=False)

    async def update(self, request: web.Request) -> web.Response:
        return await self._modify(request, replace=True)

    async def _modify(self, request: web.Request, *, replace: bool) -> web.Response:
        cal = self.calendar(request.match_info["cal"])
        event_id = request.match_info["id"]
        body = await self._json(request)
        self.send_updates.append((request.method.lower(), event_id, request.query.get("sendUpdates")))
        return web.json_response(
            self._patch(cal, event_id, body, request.headers.get("If-Match"), replace=replace)
        )

    async def delete(self, request: web.Request) -> web.Response:
        cal = self.calendar(request.match_info["cal"])
        event_id = request.match_info["id"]
        self.send_updates.append(("delete", event_id, request.query.get("sendUpdates")))
        self._delete(cal, event_id, request.headers.get("If-Match"))
        return web.Response(status=204)

    def _insert(self, cal: CalendarState, body: dict[str, Any]) -> dict[str, Any]:
        event_id = body.get("id")
        if event_id is None:
            event_id = "".join(secrets.choice(BASE32HEX) for _ in range(26))
        elif not isinstance(event_id, str) or not is_valid_event_id(event_id):
            raise bad_request("Invalid resource id value.")
        if event_id in cal.events:
            raise ApiError(409, "duplicate", "The requested identifier already exists.")
        now = self.now()
        resource = {k: copy.deepcopy(v) for k, v in body.items() if k in WRITABLE}
        resource.update(kind="calendar#event", id=event_id, created=rfc3339(now), sequence=0)
        resource.setdefault("status", "confirmed")
        resource.setdefault("iCalUID", f"{event_id}@google.com")
        self._validate(resource)
        stored = cal.store(resource, now)
        self._notify(cal)
        return stored

    def _patch(
        self, cal: CalendarState, event_id: str, body: dict[str, Any], if_match: str | None, *, replace: bool
    ) -> dict[str, Any]:
        current = cal.materialize(event_id)
        if current is None:
            raise ApiError(404, "notFound", "Not Found")
        _check_etag(current, if_match)
        keep = {
            k: current[k]
            for k in ("kind", "id", "iCalUID", "created", "recurringEventId", "originalStartTime")
            if k in current
        }
        changes = {k: v for k, v in body.items() if k in WRITABLE and k not in keep}
        resource = copy.deepcopy(current) if not replace else {}
        _merge(resource, changes)
        resource.update(keep)
        resource.setdefault("status", "confirmed")
        resource["sequence"] = int(current.get("sequence", 0)) + 1
        self._validate(resource)
        stored = cal.store(resource, self.now())
        self._notify(cal)
        return stored

    def _delete(self, cal: CalendarState, event_id: str, if_match: str | None) -> None:
        current = cal.materialize(event_id)
        if current is None:
            raise ApiError(404, "notFound", "Not Found")
        if current["status"] == "cancelled" and event_id in cal.events:
            raise ApiError(410, "deleted", "Resource has been deleted")
        _check_etag(current, if_match)
        now = self.now()
        tombstone = copy.deepcopy(current)
        tombstone["status"] = "cancelled"
        cal.store(tombstone, now)
        if current.get("recurrence"):
            for exception in cal.exceptions_of(event_id):
                if exception["status"] != "cancelled":
                    cal.store({**copy.deepcopy(exception), "status": "cancelled"}, now)
        self._notify(cal)

    @staticmethod
    def _validate(resource: dict[str, Any]) -> None:
        start, all_day = event_time(resource.get("start"), "start")
        end, _ = event_time(resource.get("end"), "end")
        if end < start:
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.", domain="calendar")
        recurrence = resource.get("recurrence")
        if recurrence is not None and not isinstance(recurrence, list):
            raise bad_request("Invalid recurrence rule.")
        if recurrence and not all_day and not resource["start"].get("timeZone"):
            raise bad_request("Missing time zone definition for start time.")
        if resource.get("status") not in ("confirmed", "tentative", "cancelled"):
            raise bad_request("Invalid value for: status")
        if resource.get("transparency", "opaque") not in ("opaque", "transparent"):
            raise bad_request("Invalid value for: transparency")

    # --- watch channels -----------------------------------------------------------------------------
    async def watch(self, request: web.Request) -> web.Response:
        cal = self.calendar(request.match_info["cal"])
        body = await self._json(request)
        channel_id, address = body.get("id"), body.get("address")
        if not channel_id or not isinstance(channel_id, str):
            raise ApiError(400, "required", "Required", location_type="parameter", location="id")
        if body.get("type") not in ("web_hook", "webhook"):
            raise bad_request("Invalid value for: type", location="type")
        if (
            not isinstance(address, str)
            or not address.startswith(("https://", "http://"))
            or (address.startswith("http://") and not self.allow_http_webhooks)
        ):
            raise ApiError(
                400,
                "push.webhookUrlNotHttps",
                "WebHook callback must be HTTPS: " + str(address),
                domain="push",
            )
        existing = self.channels.get(channel_id)
        if existing is not None and not existing.stopped:
            raise ApiError(400, "channelIdNotUnique", f"Channel id {channel_id} not unique", domain="push")
        ttl = float(body.get("params", {}).get("ttl", 604800))
        expiration = self.now() + timedelta(seconds=min(ttl, 30 * 86400))
        if body.get("expiration"):
            expiration = min(expiration, datetime.fromtimestamp(int(body["expiration"]) / 1000, UTC))
        resource_id = hashlib.sha256(f"events:{cal.id}".encode()).hexdigest()[:27]
        token = body.get("token")
        channel = Channel(
            channel_id, cal.id, resource_id, address, token if isinstance(token, str) else None, expiration
        )
        self.channels[channel_id] = channel
        self._deliver(channel, "sync")
        return web.json_response(
            {
                "kind": "api#channel",
                "id": channel_id,
                "resourceId": resource_id,
                "resourceUri": f"{self.url}/calendar/v3/calendars/{cal.id}/events?alt=json",
                **({"token": channel.token} if channel.token else {}),
                "expiration": str(int(expiration.timestamp() * 1000)),
            }
        )

    async def stop_channel(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        channel = self.channels.get(str(body.get("id")))
        if channel is None or channel.stopped or channel.resource_id != body.get("resourceId"):
            raise ApiError(404, "notFound", f"Channel '{body.get('id')}' not found for project 'clinicbot'")
        channel.stopped = True
        return web.Response(status=204)

    def _notify(self, cal: CalendarState) -> None:
        for channel in self.channels.values():
            if channel.calendar_id == cal.id and not channel.stopped and channel.expiration > self.now():
                self._deliver(channel, "exists")

    def _deliver(self, channel: Channel, state: str) -> None:
        channel.message_number += 1
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": format_datetime(channel.expiration, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": f"{self.url}/calendar/v3/calendars/{channel.calendar_id}/events?alt=json",
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel.message_number),
        }
        if channel.token:
            headers["X-Goog-Channel-Token"] = channel.token
        self._later(self._post(channel, state, headers))

    async def _post(self, channel: Channel, state: str, headers: dict[str, str]) -> None:
        number = int(headers["X-Goog-Message-Number"])
        status = await self.send_webhook(channel.address, b"", headers)
        self.deliveries.append(Delivery(channel.id, state, number, status or None))  # 0: no answer

    # --- freeBusy ------------------------------------------------------------------------------------
    async def free_busy(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if "timeMin" not in body or "timeMax" not in body:
            raise ApiError(400, "required", "Missing timeMin or timeMax.")
        lo, hi = parse_rfc3339(body["timeMin"], "timeMin"), parse_rfc3339(body["timeMax"], "timeMax")
        if hi <= lo:
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.", domain="calendar")
        calendars: dict[str, Any] = {}
        for item in body.get("items", []):
            cal_id = str(item.get("id"))
            try:
                cal = self.calendar(cal_id)
            except ApiError:
                calendars[cal_id] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                continue
            calendars[cal_id] = {"busy": [{"start": _utc(s), "end": _utc(e)} for s, e in _busy(cal, lo, hi)]}
        return web.json_response(
            {
                "kind": "calendar#freeBusy",
                "timeMin": body["timeMin"],
                "timeMax": body["timeMax"],
                "calendars": calendars,
            }
        )


def _busy(cal: CalendarState, lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    spans: list[tuple[datetime, datetime]] = []
    for stored in cal.events.values():
        r = stored.resource
        if r.get("transparency") == "transparent" or r["status"] == "cancelled":
            continue
        start, _ = event_time(r["start"], "start")
        end, _ = event_time(r["end"], "end")
        if r.get("recurrence"):
            overridden = {event_time(x["originalStartTime"], "o")[0] for x in cal.exceptions_of(r["id"])}
            length = end - start
            spans += [(o, o + length) for o in cal.occurrences(r, lo - length, hi) if o not in overridden]
        else:
            spans.append((start, end))
    merged: list[tuple[datetime, datetime]] = []
    for s, e in sorted((max(s, lo), min(e, hi)) for s, e in spans if s < hi and e > lo):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return [(s.astimezone(UTC), e.astimezone(UTC)) for s, e in merged]


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_etag(current: dict[str, Any], if_match: str | None) -> None:
    if if_match is None or if_match.strip() == "*":
        return
    if if_match.strip().removeprefix("W/") != current.get("etag"):
        raise ApiError(
            412, "conditionNotMet", "Precondition Failed", location_type="header", location="If-Match"
        )


def _merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    """Patch semantics: objects merge key by key, arrays and scalars replace, null clears."""
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
