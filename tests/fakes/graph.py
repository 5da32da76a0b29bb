"""A loopback fake of Microsoft Graph v1.0 (calendars) and its login authority.

One aiohttp server on a random 127.0.0.1 port serves:
- /v1.0/...  Graph: me|users/{id-or-upn} calendars, events CRUD, calendarView (+ /delta), getSchedule,
  $batch, subscriptions (see graph_subscriptions.py);
- /{tenant}/... the identity platform endpoints MSAL uses (see graph_login.py).

Documented behaviour it implements, errors included:
- errors as {"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}};
- 401 InvalidAuthenticationToken for a missing, unknown or expired bearer token; 403 ErrorAccessDenied
  for /users/{id} without admin-consented application permissions;
- `Prefer`: outlook.timezone, outlook.body-content-type, IdType, odata.maxpagesize (echoed in
  Preference-Applied);
- calendarView/delta: startDateTime/endDateTime on the first call, pages chained by @odata.nextLink
  ($skiptoken) and ending in @odata.deltaLink ($deltatoken); removed instances as
  {"id", "@removed": {"reason": "deleted"}}; an expired or unknown token answers 410 Gone with
  code SyncStateNotFound;
- @odata.etag on events and If-Match on PATCH/DELETE: a stale change key answers 412
  ErrorIrresolvableConflict;
- transactionId on POST events: a repeat returns the event created first, never a second one;
- JSON $batch: at most 20 requests, unique ids, dependsOn (424 for a failed dependency), up to 4
  requests of a batch run at once, and each one counts against the mailbox's throttle;
- throttling per mailbox (graph_throttle.py): 4 concurrent requests, a request budget per window.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from tests.fakes.graph_login import LoginFake, User
from tests.fakes.graph_store import (
    FakeCalendar,
    GraphError,
    GraphStore,
    Mailbox,
    StoredEvent,
    format_time,
    parse_time,
)
from tests.fakes.graph_subscriptions import SubscriptionsFake
from tests.fakes.graph_throttle import MailboxThrottle, ThrottlePolicy

__all__ = ["GraphFake", "User"]

MAX_BATCH = 20
DEFAULT_PAGE = 10
_PREFER = re.compile(r'([\w.\-]+)\s*=\s*("[^"]*"|[^,\s]+)')


@dataclass
class _Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    principal: Any

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class _Resp:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _DeltaState:
    mailbox: str
    calendar: str
    start: datetime
    end: datetime
    snapshot: dict[str, str]


@dataclass
class _Page:
    state: _DeltaState
    items: list[dict[str, Any]]
    base_path: str


class GraphFake:
    """The fake service. `await fake.start()`, then point Settings.graph_url at `fake.url`."""

    def __init__(
        self, *, throttle: ThrottlePolicy | None = None, login_public_url: str | None = None
    ) -> None:
        self.store = GraphStore()
        self.login = LoginFake(login_public_url or "https://login.microsoftonline.com")
        self.throttle = MailboxThrottle(throttle or ThrottlePolicy())
        self.subs = SubscriptionsFake(self.store)
        self.delta_tokens: dict[str, _DeltaState] = {}
        self.pages: dict[str, _Page] = {}
        #: Every HTTP request that reached the server: (method, path); $batch counts once.
        self.http_requests: list[tuple[str, str]] = []
        #: Every Graph operation, batched ones included: (method, path, status).
        self.operations: list[tuple[str, str, int]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/v1.0/{tail:.*}", self._http)
        self.login.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        await self.subs.drain()
        if self._runner:
            await self._runner.cleanup()

    # --- set-up helpers -------------------------------------------------------------------------
    def add_user(self, upn: str, *, tenant_id: str | None = None, personal: bool = False) -> Mailbox:
        """A user with a mailbox and a default calendar."""
        return self.store.add_mailbox(self.login.add_user(upn, tenant_id=tenant_id, personal=personal))

    def expire_delta_tokens(self) -> None:
        """Forget every delta and skip token, as the service does when its token cache rolls over."""
        self.delta_tokens.clear()
        self.pages.clear()

    def put_event(
        self, mbx: Mailbox, body: dict[str, Any], calendar: FakeCalendar | None = None
    ) -> StoredEvent:
        """An edit made by hand in Outlook (not through the API under test)."""
        cal = calendar or mbx.default_calendar
        event, _ = self.store.create(mbx, cal, body)
        self.subs.changed(mbx, cal.id, event.id, event.etag, "created")
        return event

    def edit_event(self, mbx: Mailbox, event_id: str, changes: dict[str, Any]) -> StoredEvent:
        event = mbx.find_event(event_id)
        assert event is not None
        self.store.update(event, changes, None)
        self.subs.changed(mbx, event.calendar_id, event.id, event.etag, "updated")
        return event

    def remove_event(self, mbx: Mailbox, event_id: str) -> None:
        event = mbx.find_event(event_id)
        assert event is not None
        self.store.delete(mbx, event, None)
        self.subs.changed(mbx, event.calendar_id, event.id, event.etag, "deleted")

    # --- HTTP entry --------------------------------------------------------------------------------
    async def _http(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["tail"]
        self.http_requests.append((request.method, "/" + path))
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return self._web(_error(400, "BadRequest", "Unable to read JSON request payload."))
        auth = request.headers.get("Authorization", "")
        principal = self.login.lookup(auth[7:]) if auth.startswith("Bearer ") else None
        if principal is None:
            msg = (
                "Access token is empty." if not auth else "Lifetime validation failed, the token is expired."
            )
            resp = _error(401, "InvalidAuthenticationToken", msg)
            resp.headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
            return self._web(resp)
        req = _Req(request.method, path, dict(request.query), dict(request.headers), body, principal)
        if path == "$batch" and request.method == "POST":
            resp = await self._batch(req)
        else:
            resp = await self._dispatch(req)
        return self._web(resp, request.headers.get("client-request-id"))

    def _web(self, resp: _Resp, client_request_id: str | None = None) -> web.Response:
        headers = {"request-id": str(uuid.uuid4()), **resp.headers}
        if client_request_id:
            headers["client-request-id"] = client_request_id
        if resp.body is None:
            return web.Response(status=resp.status, headers=headers)
        return web.json_response(resp.body, status=resp.status, headers=headers)

    async def _dispatch(self, req: _Req) -> _Resp:
        try:
            resp = await self._route(req)
        except GraphError as exc:
            resp = _error(exc.status, exc.code, exc.message)
            resp.headers.update(exc.headers)
        self.operations.append((req.method, "/" + req.path, resp.status))
        return resp

    async def _route(self, req: _Req) -> _Resp:
        segs = [s for s in req.path.strip("/").split("/") if s]
        if segs[:1] == ["subscriptions"]:
            return await self._subscriptions(req, segs[1:])
        if segs[:1] == ["me"]:
            if req.principal.user is None:
                raise GraphError(
                    400, "BadRequest", "/me request is only valid with delegated authentication flow."
                )
            mbx, tail = self._mailbox(req, req.principal.user.oid), segs[1:]
        elif segs[:1] == ["users"] and len(segs) >= 2:
            mbx, tail = self._mailbox(req, segs[1]), segs[2:]
        else:
            raise GraphError(
                400, "BadRequest", f"Resource not found for the segment '{segs[0] if segs else ''}'."
            )
        if not tail:
            u = mbx.user
            return _Resp(200, {"id": u.oid, "userPrincipalName": u.upn, "mail": u.upn, "displayName": u.name})
        rejection = self.throttle.try_acquire(mbx.user.oid)
        if rejection is not None:
            raise GraphError(
                429,
                "ApplicationThrottled",
                rejection.message,
                {"Retry-After": self.throttle.policy.retry_after_header(rejection.retry_after)},
            )
        try:
            if self.throttle.policy.op_latency:
                await asyncio.sleep(self.throttle.policy.op_latency)
            return self._mailbox_op(req, mbx, tail)
        finally:
            self.throttle.release(mbx.user.oid)

    def _mailbox(self, req: _Req, ref: str) -> Mailbox:
        mbx = self.store.resolve(ref)
        p = req.principal
        if mbx is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{ref}' is invalid.")
        if p.user is not None:
            if p.user.oid != mbx.user.oid:
                raise GraphError(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
        elif "Calendars.ReadWrite" not in p.roles or p.tenant_id != mbx.user.tenant_id:
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        return mbx

    # --- mailbox operations ------------------------------------------------------------------------
    def _mailbox_op(self, req: _Req, mbx: Mailbox, tail: list[str]) -> _Resp:
        prefs = _prefer(req.header("Prefer"))
        cal: FakeCalendar | None = None
        rest = tail
        if tail[:1] == ["calendar"]:
            cal, rest = mbx.default_calendar, tail[1:]
        elif tail[:1] == ["calendars"] and len(tail) >= 2:
            cal = mbx.calendars.get(tail[1])
            if cal is None:
                raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            rest = tail[2:]
        elif tail == ["calendars"] and req.method == "GET":
            return _Resp(200, {"value": [_calendar_json(c) for c in mbx.calendars.values()]})
        if cal is not None and not rest and req.method == "GET":
            return _Resp(200, _calendar_json(cal))
        if rest[:1] == ["events"]:
            return self._events(req, mbx, cal, rest[1:], prefs)
        if rest == ["calendarView"] and req.method == "GET":
            return self._view(req, cal or mbx.default_calendar, prefs)
        if rest == ["calendarView", "delta"] and req.method == "GET":
            return self._delta(req, mbx, cal or mbx.default_calendar, prefs)
        if rest == ["getSchedule"] and req.method == "POST" and cal is mbx.default_calendar:
            return self._schedule(req, mbx, prefs)
        raise GraphError(400, "BadRequest", f"Unsupported request {req.method} /{req.path}.")

    def _events(
        self, req: _Req, mbx: Mailbox, cal: FakeCalendar | None, rest: list[str], prefs: dict[str, str]
    ) -> _Resp:
        zone, text = prefs.get("outlook.timezone", "UTC"), prefs.get("outlook.body-content-type") == "text"
        applied = {"Preference-Applied": _applied(prefs)} if prefs else {}
        if not rest and req.method == "POST":
            target = cal or mbx.default_calendar
            event, created = self.store.create(mbx, target, req.body)
            if created:
                self.subs.changed(mbx, target.id, event.id, event.etag, "created")
            return _Resp(201, self.store.render(event, zone, text), applied)
        if len(rest) != 1:
            raise GraphError(400, "BadRequest", "Unsupported events request.")
        event = mbx.find_event(rest[0])
        if event is None or (cal is not None and event.calendar_id != cal.id):
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        if req.method == "GET":
            expand = "singleValueExtendedProperties" in req.query.get("$expand", "")
            return _Resp(200, self.store.render(event, zone, text, expand_props=expand), applied)
        if req.method == "PATCH":
            self.store.update(event, req.body, req.header("If-Match"))
            self.subs.changed(mbx, event.calendar_id, event.id, event.etag, "updated")
            return _Resp(200, self.store.render(event, zone, text), applied)
        if req.method == "DELETE":
            self.store.delete(mbx, event, req.header("If-Match"))
            self.subs.changed(mbx, event.calendar_id, event.id, event.etag, "deleted")
            return _Resp(204)
        raise GraphError(405, "BadRequest", "Method not allowed.")

    def _window(self, req: _Req) -> tuple[datetime, datetime]:
        start, end = (
            req.query.get("startDateTime") or req.query.get("startdatetime"),
            (req.query.get("endDateTime") or req.query.get("enddatetime")),
        )
        if not start or not end:
            raise GraphError(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the "
                "query string parameters StartDateTime and EndDateTime.",
            )
        s, _ = parse_time({"dateTime": start.replace("Z", ""), "timeZone": "UTC"}, "startDateTime")
        e, _ = parse_time({"dateTime": end.replace("Z", ""), "timeZone": "UTC"}, "endDateTime")
        return s, e

    def _view(self, req: _Req, cal: FakeCalendar, prefs: dict[str, str]) -> _Resp:
        start, end = self._window(req)
        zone, text = prefs.get("outlook.timezone", "UTC"), prefs.get("outlook.body-content-type") == "text"
        rows = [
            self.store.render(ev, zone, text, (iid, s, e))
            for ev, iid, s, e in self.store.instances(cal, start, end)
        ]
        size = int(req.query.get("$top") or prefs.get("odata.maxpagesize") or DEFAULT_PAGE)
        skip = int(req.query.get("$skip") or 0)
        body: dict[str, Any] = {"value": rows[skip : skip + size]}
        if skip + size < len(rows):
            query = {**req.query, "$skip": str(skip + size)}
            body["@odata.nextLink"] = f"{self.url}/v1.0/{req.path}?{urlencode(query)}"
        return _Resp(200, body, {"Preference-Applied": _applied(prefs)} if prefs else {})

    def _delta(self, req: _Req, mbx: Mailbox, cal: FakeCalendar, prefs: dict[str, str]) -> _Resp:
        zone, text = prefs.get("outlook.timezone", "UTC"), prefs.get("outlook.body-content-type") == "text"
        size = int(prefs.get("odata.maxpagesize") or DEFAULT_PAGE)
        gone = GraphError(
            410,
            "SyncStateNotFound",
            "The sync state generation is not found. The delta token is "
            "expired and data must be synchronized again.",
        )
        if "$skiptoken" in req.query:
            page = self.pages.pop(req.query["$skiptoken"], None)
            if page is None or page.state.mailbox != mbx.user.oid or page.state.calendar != cal.id:
                raise gone
        else:
            if "$deltatoken" in req.query:
                prior = self.delta_tokens.get(req.query["$deltatoken"])
                if prior is None or prior.mailbox != mbx.user.oid or prior.calendar != cal.id:
                    raise gone
                start, end, seen = prior.start, prior.end, prior.snapshot
            else:
                start, end = self._window(req)
                seen = {}
            current = self.store.instances(cal, start, end)
            snapshot = {iid: ev.change_key for ev, iid, _, _ in current}
            items = [
                self.store.render(ev, zone, text, (iid, s, e))
                for ev, iid, s, e in current
                if seen.get(iid) != ev.change_key
            ]
            items += [
                {"@odata.type": "#microsoft.graph.event", "id": iid, "@removed": {"reason": "deleted"}}
                for iid in seen
                if iid not in snapshot
            ]
            page = _Page(_DeltaState(mbx.user.oid, cal.id, start, end, snapshot), items, req.path)
        chunk, page.items = page.items[:size], page.items[size:]
        body: dict[str, Any] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
            "value": chunk,
        }
        if page.items:
            token = secrets.token_urlsafe(24)
            self.pages[token] = page
            body["@odata.nextLink"] = f"{self.url}/v1.0/{page.base_path}?$skiptoken={token}"
        else:
            token = secrets.token_urlsafe(24)
            self.delta_tokens[token] = page.state
            body["@odata.deltaLink"] = f"{self.url}/v1.0/{page.base_path}?$deltatoken={token}"
        return _Resp(200, body, {"Preference-Applied": _applied(prefs)} if prefs else {})

    def _schedule(self, req: _Req, mbx: Mailbox, prefs: dict[str, str]) -> _Resp:
        if mbx.user.personal:
            raise GraphError(
                400, "ErrorInvalidRequest", "getSchedule is not supported for personal accounts."
            )
        body = req.body if isinstance(req.body, dict) else {}
        start, _ = parse_time(body.get("startTime"), "startTime")
        end, _ = parse_time(body.get("endTime"), "endTime")
        interval = int(body.get("availabilityViewInterval") or 30)
        zone = prefs.get("outlook.timezone", (body.get("startTime") or {}).get("timeZone", "UTC"))
        out = []
        for address in body.get("schedules") or []:
            target = self.store.resolve(str(address))
            if target is None or target.user.tenant_id != mbx.user.tenant_id:
                out.append(
                    {
                        "scheduleId": address,
                        "availabilityView": "",
                        "error": {
                            "message": "The user was not found.",
                            "responseCode": "ErrorMailRecipientNotFound",
                        },
                    }
                )
                continue
            items = []
            for ev, _iid, s, e in self.store.instances(target.default_calendar, start, end):
                show = ev.fields.get("showAs", "busy")
                if show == "free":
                    continue
                items.append(
                    {
                        "isPrivate": False,
                        "status": show,
                        "subject": ev.fields.get("subject", ""),
                        "start": _fmt(s, zone),
                        "end": _fmt(e, zone),
                    }
                )
            out.append(
                {
                    "scheduleId": address,
                    "availabilityView": _view_string(items, start, end, interval),
                    "scheduleItems": items,
                }
            )
        return _Resp(200, {"value": out})

    # --- subscriptions --------------------------------------------------------------------------
    async def _subscriptions(self, req: _Req, rest: list[str]) -> _Resp:
        p = req.principal
        if not rest and req.method == "POST":

            def mailbox_for(kind: str, ref: str | None) -> Mailbox:
                if kind.lower() == "me":
                    if p.user is None:
                        raise GraphError(
                            400, "BadRequest", "/me request is only valid with delegated authentication flow."
                        )
                    return self._mailbox(req, p.user.oid)
                return self._mailbox(req, ref or "")

            sub = await self.subs.create(req.body, mailbox_for, p.client_id, p.tenant_id)
            return _Resp(201, sub.json())
        if len(rest) == 1 and req.method == "PATCH":
            return _Resp(200, self.subs.renew(rest[0], req.body).json())
        if len(rest) == 1 and req.method == "DELETE":
            self.subs.delete(rest[0])
            return _Resp(204)
        if len(rest) == 1 and req.method == "GET":
            sub = self.subs.subscriptions.get(rest[0])
            if sub is None:
                raise GraphError(404, "ResourceNotFound", "The object was not found.")
            return _Resp(200, sub.json())
        if len(rest) == 2 and rest[1] == "reauthorize" and req.method == "POST":
            self.subs.reauthorize(rest[0])
            return _Resp(204)
        raise GraphError(400, "BadRequest", "Unsupported subscriptions request.")

    # --- $batch ------------------------------------------------------------------------------------
    async def _batch(self, req: _Req) -> _Resp:
        items = req.body.get("requests") if isinstance(req.body, dict) else None
        if not isinstance(items, list) or not items:
            return _error(400, "BadRequest", "Invalid batch payload format.")
        if len(items) > MAX_BATCH:
            return _error(400, "BadRequest", f"Too many requests in the batch; the maximum is {MAX_BATCH}.")
        ids = [str(i.get("id")) if isinstance(i, dict) else "" for i in items]
        if "" in ids or len(set(ids)) != len(ids):
            return _error(400, "BadRequest", "Each request in a batch needs a unique id.")
        for item in items:
            if not isinstance(item.get("method"), str) or not isinstance(item.get("url"), str):
                return _error(400, "BadRequest", "Each request in a batch needs a method and a url.")
            if "body" in item and "content-type" not in {k.lower() for k in (item.get("headers") or {})}:
                return _error(400, "BadRequest", "Content-Type header is required when a request has a body.")
            for dep in item.get("dependsOn") or []:
                if dep not in ids[: ids.index(str(item["id"]))]:
                    return _error(
                        400, "BadRequest", f"Request {item['id']} depends on unknown request {dep}."
                    )
        results: dict[str, _Resp] = {}

        async def run(item: dict[str, Any]) -> None:
            failed = [d for d in item.get("dependsOn") or [] if results[d].status >= 400]
            if failed:
                results[str(item["id"])] = _error(
                    424, "FailedDependency", "A request this one depends on failed."
                )
                return
            parts = urlsplit(item["url"])
            sub = _Req(
                item["method"].upper(),
                parts.path.lstrip("/").removeprefix("v1.0/"),
                dict(parse_qsl(parts.query)),
                dict(item.get("headers") or {}),
                item.get("body"),
                req.principal,
            )
            results[str(item["id"])] = await self._dispatch(sub)

        if any(item.get("dependsOn") for item in items):
            for item in items:
                await run(item)
        else:
            # Graph dispatches at most 4 requests of a batch to the service at a time.
            gate = asyncio.Semaphore(4)

            async def gated(item: dict[str, Any]) -> None:
                async with gate:
                    await run(item)

            await asyncio.gather(*(gated(i) for i in items))
        order = list(results)
        random.shuffle(order)  # responses may come back in any order; clients match them by id
        return _Resp(
            200,
            {
                "responses": [
                    {
                        "id": rid,
                        "status": results[rid].status,
                        "headers": results[rid].headers,
                        "body": results[rid].body,
                    }
                    for rid in order
                ]
            },
        )


def _error(status: int, code: str, message: str) -> _Resp:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    inner = {"date": now, "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}
    return _Resp(status, {"error": {"code": code, "message": message, "innerError": inner}})


def _prefer(header: str | None) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _PREFER.findall(header or "")}


def _applied(prefs: dict[str, str]) -> str:
    return ", ".join(f'{k}="{v}"' if not v.isdigit() else f"{k}={v}" for k, v in prefs.items())


def _calendar_json(cal: FakeCalendar) -> dict[str, Any]:
    return {
        "id": cal.id,
        "name": cal.name,
        "color": "auto",
        "isDefaultCalendar": cal.is_default,
        "canEdit": cal.can_edit,
        "canShare": cal.can_edit,
        "changeKey": "ck-" + cal.id[-8:],
        "owner": {"name": cal.owner.name, "address": cal.owner.upn},
    }


def _fmt(moment: datetime, zone: str) -> dict[str, str]:
    return format_time(moment, zone)


def _view_string(items: list[dict[str, Any]], start: datetime, end: datetime, interval: int) -> str:
    codes = {"free": "0", "tentative": "1", "busy": "2", "oof": "3", "workingElsewhere": "4"}
    slots = []
    step = interval * 60
    moment = start
    parsed = [
        (parse_time(i["start"], "s")[0], parse_time(i["end"], "e")[0], codes.get(i["status"], "2"))
        for i in items
    ]
    while moment < end:
        slot_end = datetime.fromtimestamp(moment.timestamp() + step, UTC)
        code = max((c for s, e, c in parsed if s < slot_end and e > moment), default="0")
        slots.append(code)
        moment = slot_end
    return "".join(slots)
