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
- GET events with the extended-property $filter (events marked by an app), paged by $skip;
- `lose_answers`: a $batch item done but answered 504, for crash-safety tests;
- JSON $batch: at most 20 requests, unique ids, dependsOn (424 for a failed dependency), up to 4
  requests of a batch run at once, and each one counts against the mailbox's throttle;
- throttling per mailbox (graph_throttle.py): 4 concurrent requests, a request budget per window;
- Microsoft Teams Shifts: a team's schedule, scheduling groups and shifts (graph_teams.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import secrets
import ssl
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from tests.adapters.graph.fakes.graph_http import Req, Resp, applied, error, prefer
from tests.adapters.graph.fakes.graph_login import LoginFake, User
from tests.adapters.graph.fakes.graph_store import (
    FakeCalendar,
    GraphError,
    GraphStore,
    Mailbox,
    StoredEvent,
)
from tests.adapters.graph.fakes.graph_subscriptions import SubscriptionsFake
from tests.adapters.graph.fakes.graph_teams import TeamsFake
from tests.adapters.graph.fakes.graph_throttle import MailboxThrottle, ThrottlePolicy
from tests.adapters.graph.fakes.graph_views import CalendarViews, DeltaState, Page

__all__ = ["GraphFake", "User"]

MAX_BATCH = 20
#: The one $filter on events the fake understands: marked events, as Graph documents for extended properties.
_PROP_FILTER = re.compile(
    r"singleValueExtendedProperties/Any\(ep:\s*ep/id eq '(?P<id>(?:[^']|'')+)' and ep/value eq '(?P<value>(?:[^']|'')*)'\)",
    re.IGNORECASE,
)


class GraphFake(CalendarViews):
    """The fake service. `await fake.start()`, then point Settings.graph_url at `fake.url`."""

    def __init__(self, *, throttle: ThrottlePolicy | None = None, login_public_url: str | None = None) -> None:
        #: Attachment ids read ("" for a listing), in order.
        self.attachment_reads: list[str] = []
        self.store = GraphStore()
        self.login = LoginFake(login_public_url or "https://login.microsoftonline.com")
        self.throttle = MailboxThrottle(throttle or ThrottlePolicy())
        self.subs = SubscriptionsFake(self.store)
        self.teams = TeamsFake()
        #: Answers lost on the way back: the next N successful $batch items with this method are done,
        #: but answered 504 (a gateway timeout), as when a connection drops after the work.
        self.lose_answers: dict[str, int] = {}
        self.delta_tokens: dict[str, DeltaState] = {}
        self.pages: dict[str, Page] = {}
        #: Every HTTP request that reached the server: (method, path); $batch counts once.
        self.http_requests: list[tuple[str, str]] = []
        #: Every Graph operation, batched ones included: (method, path, status).
        self.operations: list[tuple[str, str, int]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(
        self, ssl_context: ssl.SSLContext | None = None, extra_routes: Callable[[web.Application], None] | None = None
    ) -> str:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/v1.0/{tail:.*}", self._http)
        if extra_routes is not None:
            extra_routes(app)
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

    def put_event(self, mbx: Mailbox, body: dict[str, Any], calendar: FakeCalendar | None = None) -> StoredEvent:
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
                return self._web(error(400, "BadRequest", "Unable to read JSON request payload."))
        auth = request.headers.get("Authorization", "")
        principal = self.login.lookup(auth[7:]) if auth.startswith("Bearer ") else None
        if principal is None:
            msg = "Access token is empty." if not auth else "Lifetime validation failed, the token is expired."
            resp = error(401, "InvalidAuthenticationToken", msg)
            resp.headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
            return self._web(resp)
        req = Req(request.method, path, dict(request.query), dict(request.headers), body, principal)
        if path == "$batch" and request.method == "POST":
            resp = await self._batch(req)
        else:
            resp = await self._dispatch(req)
        return self._web(resp, request.headers.get("client-request-id"))

    def _web(self, resp: Resp, client_request_id: str | None = None) -> web.Response:
        headers = {"request-id": str(uuid.uuid4()), **resp.headers}
        if client_request_id:
            headers["client-request-id"] = client_request_id
        if resp.body is None:
            return web.Response(status=resp.status, headers=headers)
        return web.json_response(resp.body, status=resp.status, headers=headers)

    async def _dispatch(self, req: Req) -> Resp:
        try:
            resp = await self._route(req)
        except GraphError as exc:
            resp = error(exc.status, exc.code, exc.message)
            resp.headers.update(exc.headers)
        self.operations.append((req.method, "/" + req.path, resp.status))
        return resp

    async def _route(self, req: Req) -> Resp:
        segs = [s for s in req.path.strip("/").split("/") if s]
        if segs[:1] == ["subscriptions"]:
            return await self._subscriptions(req, segs[1:])
        if segs[:1] == ["teams"]:
            return self.teams.route(req, segs[1:])
        if segs[:1] == ["me"]:
            if req.principal.user is None:
                raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
            mbx, tail = self._mailbox(req, req.principal.user.oid), segs[1:]
        elif segs[:1] == ["users"] and len(segs) >= 2:
            mbx, tail = self._mailbox(req, segs[1]), segs[2:]
        else:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segs[0] if segs else ''}'.")
        if not tail:
            u = mbx.user
            return Resp(200, {"id": u.oid, "userPrincipalName": u.upn, "mail": u.upn, "displayName": u.name})
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

    def _mailbox(self, req: Req, ref: str) -> Mailbox:
        mbx = self.store.resolve(ref)
        p = req.principal
        if mbx is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{ref}' is invalid.")
        if p.user is not None:
            if p.user.oid != mbx.user.oid:
                raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        elif "Calendars.ReadWrite" not in p.roles or p.tenant_id != mbx.user.tenant_id:
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        return mbx

    # --- mailbox operations ------------------------------------------------------------------------
    def _mailbox_op(self, req: Req, mbx: Mailbox, tail: list[str]) -> Resp:
        prefs = prefer(req.header("Prefer"))
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
            return Resp(200, {"value": [_calendar_json(c) for c in mbx.calendars.values()]})
        if cal is not None and not rest and req.method == "GET":
            return Resp(200, _calendar_json(cal))
        if rest[:1] == ["events"]:
            return self._events(req, mbx, cal, rest[1:], prefs)
        if rest == ["calendarView"] and req.method == "GET":
            return self._view(req, cal or mbx.default_calendar, prefs)
        if rest == ["calendarView", "delta"] and req.method == "GET":
            return self._delta(req, mbx, cal or mbx.default_calendar, prefs)
        if rest == ["getSchedule"] and req.method == "POST" and cal is mbx.default_calendar:
            return self._schedule(req, mbx, prefs)
        raise GraphError(400, "BadRequest", f"Unsupported request {req.method} /{req.path}.")

    def _events(self, req: Req, mbx: Mailbox, cal: FakeCalendar | None, rest: list[str], prefs: dict[str, str]) -> Resp:
        zone, text = prefs.get("outlook.timezone", "UTC"), prefs.get("outlook.body-content-type") == "text"
        pref_headers = {"Preference-Applied": applied(prefs)} if prefs else {}
        if not rest and req.method == "GET":
            return self._event_list(req, mbx, cal, zone, text, pref_headers, prefs)
        if not rest and req.method == "POST":
            target = cal or mbx.default_calendar
            event, created = self.store.create(mbx, target, req.body)
            if created:
                self.subs.changed(mbx, target.id, event.id, event.etag, "created")
            return Resp(201, self.store.render(event, zone, text), pref_headers)
        if len(rest) not in (1, 2, 3) or (len(rest) > 1 and rest[1] != "attachments"):
            raise GraphError(400, "BadRequest", "Unsupported events request.")
        event = mbx.find_event(rest[0])
        if event is None and len(rest) == 1 and (occurrence := mbx.find_occurrence(rest[0])) is not None:
            return self._occurrence(req, mbx, *occurrence, zone, text, pref_headers)
        if event is None or (cal is not None and event.calendar_id != cal.id):
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        if len(rest) > 1:
            return self._attachments(req, event, rest[2] if len(rest) == 3 else None)
        if req.method == "GET":
            expand = "singleValueExtendedProperties" in req.query.get("$expand", "")
            return Resp(200, self.store.render(event, zone, text, expand_props=expand), pref_headers)
        if req.method == "PATCH":
            self.store.update(event, req.body, req.header("If-Match"))
            self.subs.changed(mbx, event.calendar_id, event.id, event.etag, "updated")
            return Resp(200, self.store.render(event, zone, text), pref_headers)
        if req.method == "DELETE":
            self.store.delete(mbx, event, req.header("If-Match"))
            self.subs.changed(mbx, event.calendar_id, event.id, event.etag, "deleted")
            return Resp(204)
        raise GraphError(405, "BadRequest", "Method not allowed.")

    def _occurrence(self, req: Req, mbx: Mailbox, event: Any, instance: tuple[str, datetime, datetime], zone: str,
                    text: bool, pref_headers: dict[str, str]) -> Resp:
        """GET, PATCH (which makes an exception) and DELETE of one occurrence, by its own id."""
        iid = instance[0]
        if req.method == "GET":
            return Resp(200, self.store.render(event, zone, text, instance), pref_headers)
        if req.method == "PATCH":
            self.store.update_occurrence(event, iid, req.body, req.header("If-Match"))
            found = mbx.find_occurrence(iid)
            assert found is not None
            self.subs.changed(mbx, event.calendar_id, iid, f'W/"{event.instance_key(iid)}"', "updated")
            return Resp(200, self.store.render(event, zone, text, found[1]), pref_headers)
        if req.method == "DELETE":
            self.store.delete_occurrence(event, iid)
            self.subs.changed(mbx, event.calendar_id, iid, event.etag, "deleted")
            return Resp(204)
        raise GraphError(405, "BadRequest", "Method not allowed.")

    def edit_occurrence(self, mbx: Mailbox, iid: str, changes: dict[str, Any]) -> None:
        """One visit of a series changed by hand in Outlook."""
        found = mbx.find_occurrence(iid)
        assert found is not None
        self.store.update_occurrence(found[0], iid, changes, None)
        self.subs.changed(mbx, found[0].calendar_id, iid, found[0].etag, "updated")

    def remove_occurrence(self, mbx: Mailbox, iid: str) -> None:
        """One visit of a series deleted by hand in Outlook."""
        found = mbx.find_occurrence(iid)
        assert found is not None
        self.store.delete_occurrence(found[0], iid)
        self.subs.changed(mbx, found[0].calendar_id, iid, found[0].etag, "deleted")

    def add_attachment(self, mbx: Mailbox, event_id: str, name: str, content_type: str, content: bytes, *,
                       kind: str = "#microsoft.graph.fileAttachment") -> str:
        """A file a person attached to their event in Outlook; its attachment id."""
        event = mbx.find_event(event_id)
        assert event is not None
        att_id = "AAMk" + secrets.token_hex(12)
        event.attachments.append({"@odata.type": kind, "id": att_id, "name": name, "contentType": content_type,
                                  "size": len(content), "isInline": False,
                                  "contentBytes": base64.b64encode(content).decode()})
        return att_id

    def _attachments(self, req: Req, event: Any, att_id: str | None) -> Resp:
        """GET events/{id}/attachments ($select honoured) and events/{id}/attachments/{id} (with contentBytes)."""
        if req.method != "GET":
            raise GraphError(405, "BadRequest", "Method not allowed.")
        self.attachment_reads.append(att_id or "")
        if att_id is None:
            chosen = [f for f in req.query.get("$select", "").split(",") if f]
            keep = (lambda a: {k: v for k, v in a.items() if k in chosen or k.startswith("@odata")}) if chosen else dict
            return Resp(200, {"value": [keep(a) for a in event.attachments]})
        found = next((a for a in event.attachments if a["id"] == att_id), None)
        if found is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return Resp(200, dict(found))

    # --- subscriptions --------------------------------------------------------------------------
    def _event_list(
        self, req: Req, mbx: Mailbox, cal: FakeCalendar | None, zone: str, text: bool,
        pref_headers: dict[str, str], prefs: dict[str, str],
    ) -> Resp:
        """GET .../events: only the extended-property filter Graph documents for finding marked events
        (`singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')`), paged by $skip."""
        wanted: tuple[str, str] | None = None
        raw = req.query.get("$filter")
        if raw is not None:
            m = _PROP_FILTER.fullmatch(raw.strip())
            if m is None:
                raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
            wanted = (m["id"].replace("''", "'"), m["value"].replace("''", "'"))
        events = [e for c in mbx.calendars.values() if cal is None or c is cal for e in c.events.values()]
        if wanted is not None:
            events = [
                e for e in events
                if any(
                    isinstance(p, dict) and p.get("id", "").lower() == wanted[0].lower() and p.get("value") == wanted[1]
                    for p in e.fields.get("singleValueExtendedProperties") or []
                )
            ]
        events.sort(key=lambda e: e.id)
        size = int(req.query.get("$top") or prefs.get("odata.maxpagesize") or 10)
        skip = int(req.query.get("$skip") or 0)
        expand = "singleValueExtendedProperties" in req.query.get("$expand", "")
        page = events[skip : skip + size]
        body: dict[str, Any] = {"value": [self.store.render(e, zone, text, expand_props=expand) for e in page]}
        if skip + size < len(events):
            query = {k: v for k, v in req.query.items() if k != "$skip"} | {"$skip": str(skip + size)}
            body["@odata.nextLink"] = f"{self.url}/v1.0/{req.path.strip('/')}?{urlencode(query)}"
        return Resp(200, body, pref_headers)

    async def _subscriptions(self, req: Req, rest: list[str]) -> Resp:
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
            return Resp(201, sub.json())
        if len(rest) == 1 and req.method == "PATCH":
            return Resp(200, self.subs.renew(rest[0], req.body).json())
        if len(rest) == 1 and req.method == "DELETE":
            self.subs.delete(rest[0])
            return Resp(204)
        if len(rest) == 1 and req.method == "GET":
            sub = self.subs.subscriptions.get(rest[0])
            if sub is None:
                raise GraphError(404, "ResourceNotFound", "The object was not found.")
            return Resp(200, sub.json())
        if len(rest) == 2 and rest[1] == "reauthorize" and req.method == "POST":
            self.subs.reauthorize(rest[0])
            return Resp(204)
        raise GraphError(400, "BadRequest", "Unsupported subscriptions request.")

    # --- $batch ------------------------------------------------------------------------------------
    async def _batch(self, req: Req) -> Resp:
        items = req.body.get("requests") if isinstance(req.body, dict) else None
        if not isinstance(items, list) or not items:
            return error(400, "BadRequest", "Invalid batch payload format.")
        if len(items) > MAX_BATCH:
            return error(400, "BadRequest", f"Too many requests in the batch; the maximum is {MAX_BATCH}.")
        ids = [str(i.get("id")) if isinstance(i, dict) else "" for i in items]
        if "" in ids or len(set(ids)) != len(ids):
            return error(400, "BadRequest", "Each request in a batch needs a unique id.")
        for item in items:
            if not isinstance(item.get("method"), str) or not isinstance(item.get("url"), str):
                return error(400, "BadRequest", "Each request in a batch needs a method and a url.")
            if "body" in item and "content-type" not in {k.lower() for k in (item.get("headers") or {})}:
                return error(400, "BadRequest", "Content-Type header is required when a request has a body.")
            for dep in item.get("dependsOn") or []:
                if dep not in ids[: ids.index(str(item["id"]))]:
                    return error(400, "BadRequest", f"Request {item['id']} depends on unknown request {dep}.")
        results: dict[str, Resp] = {}

        async def run(item: dict[str, Any]) -> None:
            failed = [d for d in item.get("dependsOn") or [] if results[d].status >= 400]
            if failed:
                results[str(item["id"])] = error(424, "FailedDependency", "A request this one depends on failed.")
                return
            parts = urlsplit(item["url"])
            sub = Req(
                item["method"].upper(),
                parts.path.lstrip("/").removeprefix("v1.0/"),
                dict(parse_qsl(parts.query)),
                dict(item.get("headers") or {}),
                item.get("body"),
                req.principal,
            )
            answer = await self._dispatch(sub)
            if answer.status < 300 and self.lose_answers.get(sub.method, 0) > 0:
                self.lose_answers[sub.method] -= 1
                answer = error(504, "GatewayTimeout", "The operation was done but its answer was lost.")
            results[str(item["id"])] = answer

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
        return Resp(
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
