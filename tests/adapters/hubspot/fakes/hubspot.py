"""A loopback HubSpot: OAuth tokens, owners, contacts, meetings with associations, CRM search,
properties, and webhook deliveries signed with the v3 signature.

Documented behaviour (platform-apis.md, HubSpot section; developers.hubspot.com CRM guides):
- errors are {"status": "error", "message", "correlationId", "category"}; an unknown or expired
  token is 401 INVALID_AUTHENTICATION / EXPIRED_AUTHENTICATION;
- 429 RATE_LIMITS with `policyName` and the X-HubSpot-RateLimit-* headers (no Retry-After) for the
  next `throttle` calls (`daily` makes it the daily limit, remaining 0);
- searches (`POST /crm/v3/objects/<type>/search`) take filterGroups (EQ, GTE, GT, LT, LTE,
  HAS_PROPERTY, NOT_HAS_PROPERTY), sorts, `limit` and `after`, answer {total, results, paging:
  {next: {after}}} a `page_size` at a time, and refuse a filter on a property the account lacks
  (400 VALIDATION_ERROR); so does a create or update naming one;
- a contact create with an email already held is 409 "Contact already exists. Existing ID: <id>";
- a meeting needs hs_timestamp; `associations` link it to contacts (type 200);
- OAuth (`POST /oauth/v1/token`, form): a code is good once; access tokens last `access_lifetime`
  seconds; refresh answers a new access token (HubSpot keeps the refresh token).
- form submissions (`GET /form-integrations/v1/submissions/forms/{guid}`, scope `forms`): newest
  first, `limit` 1..50 (default 20; more is 400), `after` for the next page in `paging.next`; an
  unknown form is 404.
`lose_next_create` answers one meeting create with a 502 after storing it (a lost answer).
"""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from adapters.hubspot.webhooks import sign
from tests.adapters.fakes_kit import LoopbackFake, offset_page

__all__ = ["HubSpotFake"]

_MEETING_PROPS = {"hs_timestamp", "hs_meeting_title", "hs_meeting_start_time", "hs_meeting_end_time",
                  "hs_meeting_outcome", "hs_meeting_location", "hs_meeting_body", "hs_internal_meeting_notes",
                  "hubspot_owner_id", "hs_meeting_external_url", "hs_lastmodifieddate", "hs_createdate"}
_CONTACT_PROPS = {"email", "firstname", "lastname", "phone", "hs_lastmodifieddate", "hs_createdate"}


def _error(status: int, category: str, message: str, headers: dict[str, str] | None = None,
           **extra: Any) -> web.Response:
    return web.json_response({"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                              "category": category, **extra}, status=status, headers=headers)


@dataclass
class HubSpotFake(LoopbackFake):
    portal_id: int = 4242
    client_id: str = "hs-client"
    client_secret: str = "hs-secret"
    token: str = "hs-private-token"
    page_size: int = 2
    throttle: int = 0
    daily: bool = False
    access_lifetime: int = 1800
    lose_next_create: bool = False
    #: A rolling window (requests per `window_ms`) enforced with 429s and told in every answer's
    #: X-HubSpot-RateLimit-* headers; None: no window.
    window: int | None = None
    window_ms: int = 10000
    daily_left: int | None = None
    throttled: int = 0
    owners: list[dict[str, Any]] = field(default_factory=list)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: meeting id -> contact ids
    links: dict[str, list[str]] = field(default_factory=dict)
    custom: dict[str, set[str]] = field(default_factory=lambda: {"meetings": set(), "contacts": set()})
    codes: dict[str, str] = field(default_factory=dict)
    #: form guid -> its submissions, oldest first: {conversionId, submittedAt, values, pageUrl}
    forms: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    access: dict[str, float] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)
    _ids: Any = field(default_factory=lambda: itertools.count(1001))
    _last: int = 0
    _window_start: float = 0.0
    _window_used: int = 0

    # --- test helpers -----------------------------------------------------------------------

    def add_owner(self, first: str, last: str, email: str) -> str:
        owner = {"id": str(next(self._ids)), "firstName": first, "lastName": last, "email": email,
                 "userId": next(self._ids), "archived": False}
        self.owners.append(owner)
        return str(owner["id"])

    def add_contact(self, email: str, first: str = "", last: str = "", phone: str = "") -> str:
        cid = str(next(self._ids))
        self.contacts[cid] = {"email": email.lower(), "firstname": first, "lastname": last, "phone": phone}
        return cid

    def add_meeting(self, properties: dict[str, str], contact: str | None = None) -> str:
        mid = str(next(self._ids))
        self.meetings[mid] = {**properties, "hs_lastmodifieddate": self._now()}
        self.links[mid] = [contact] if contact else []
        return mid

    def add_form(self) -> str:
        guid = str(uuid.uuid4())
        self.forms[guid] = []
        return guid

    def submit(self, form: str, values: dict[str, str], *, at_ms: int | None = None) -> str:
        """A visitor submits `form`; its conversionId."""
        conversion = str(uuid.uuid4())
        self.forms[form].append({"conversionId": conversion,
                                 "submittedAt": at_ms if at_ms is not None else int(self._now()),
                                 "values": [{"name": k, "value": v} for k, v in values.items()],
                                 "pageUrl": "https://northside.example/book"})
        return conversion

    def issue_code(self) -> str:
        code = secrets.token_urlsafe(8)
        self.codes[code] = "unused"
        return code

    def signed(self, url: str, body: bytes, *, at_ms: int | None = None, secret: str | None = None,
               method: str = "POST") -> dict[str, str]:
        """The headers HubSpot sends with a v3-signed delivery of `body` to `url`."""
        stamp = str(at_ms if at_ms is not None else int(time.time() * 1000))
        return {"X-HubSpot-Signature-v3": sign(method, url, body, stamp, secret or self.client_secret),
                "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"}

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    def _now(self) -> str:
        """Milliseconds now, always after the last one handed out (each change gets a newer date)."""
        self._last = max(self._last + 1, time.time_ns() // 1_000_000)
        return str(self._last)

    # --- server --------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/oauth/v1/token", self.oauth_token),
            web.get("/oauth/v1/access-tokens/{token}", self.token_info),
            web.get("/crm/v3/owners", self.list_owners),
            web.post("/crm/v3/properties/{type}", self.create_property),
            web.post("/crm/v3/objects/{type}/search", self.search),
            web.post("/crm/v3/objects/contacts/batch/read", self.batch_contacts),
            web.post("/crm/v4/associations/meetings/contacts/batch/read", self.batch_links),
            web.post("/crm/v3/objects/contacts", self.create_contact),
            web.post("/crm/v3/objects/meetings", self.create_meeting),
            web.get("/crm/v3/objects/meetings/{id}", self.get_meeting),
            web.patch("/crm/v3/objects/meetings/{id}", self.update_meeting),
            web.get("/form-integrations/v1/submissions/forms/{guid}", self.form_submissions),
        ]

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.path.startswith("/oauth/"):
            return await handler(request)
        if self.throttle > 0:
            self.throttle -= 1
            if self.daily:
                return _error(429, "RATE_LIMITS", "You have reached your daily limit.", policyName="DAILY",
                              headers={"X-HubSpot-RateLimit-Daily": "250000",
                                       "X-HubSpot-RateLimit-Daily-Remaining": "0"})
            return _error(429, "RATE_LIMITS", "You have reached your ten_secondly_rolling limit.",
                          policyName="TEN_SECONDLY_ROLLING", headers={
                              "X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Remaining": "0",
                              "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if given != self.token:
            expires = self.access.get(given)
            if expires is None:
                return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
            if expires <= time.time():
                return _error(401, "EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired.")
        limits = self._limits()
        if limits is not None and limits.get("X-HubSpot-RateLimit-Remaining") == "-1":
            self.throttled += 1
            return _error(429, "RATE_LIMITS", "You have reached your ten_secondly_rolling limit.",
                          policyName="TEN_SECONDLY_ROLLING", headers={**limits, "X-HubSpot-RateLimit-Remaining": "0"})
        response: web.StreamResponse = await handler(request)
        response.headers.update(limits or {})
        return response

    def _limits(self) -> dict[str, str] | None:
        """Count this request in the window and the day; the headers HubSpot sends (Remaining -1: over)."""
        headers: dict[str, str] = {}
        if self.daily_left is not None:
            self.daily_left -= 1
            headers.update({"X-HubSpot-RateLimit-Daily": "250000",
                            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_left, 0))})
        if self.window is not None:
            now = time.monotonic()
            if now - self._window_start >= self.window_ms / 1000:
                self._window_start, self._window_used = now, 0
            self._window_used += 1
            headers.update({"X-HubSpot-RateLimit-Max": str(self.window),
                            "X-HubSpot-RateLimit-Remaining": str(max(self.window - self._window_used, -1)),
                            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.window_ms)})
        return headers or None

    # --- OAuth ---------------------------------------------------------------------------------

    def _tokens(self, refresh: str) -> dict[str, Any]:
        access = secrets.token_urlsafe(12)
        self.access[access] = time.time() + self.access_lifetime
        return {"access_token": access, "refresh_token": refresh, "expires_in": self.access_lifetime,
                "token_type": "bearer"}

    async def oauth_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"status": "BAD_CLIENT_ID", "message": "missing or invalid client id",
                                      "error": "invalid_client", "correlationId": str(uuid.uuid4())}, status=400)
        if form.get("grant_type") == "authorization_code":
            code = str(form.get("code") or "")
            if self.codes.get(code) != "unused":
                return web.json_response({"status": "BAD_AUTH_CODE", "message": "missing or unknown auth code",
                                          "error": "invalid_grant", "correlationId": str(uuid.uuid4())},
                                         status=400)
            self.codes[code] = "used"
            refresh = secrets.token_urlsafe(12)
            self.refresh_tokens.add(refresh)
            return web.json_response(self._tokens(refresh))
        if form.get("grant_type") == "refresh_token":
            refresh = str(form.get("refresh_token") or "")
            if refresh not in self.refresh_tokens:
                return web.json_response({"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh "
                                          "token", "error": "invalid_grant", "correlationId": str(uuid.uuid4())},
                                         status=400)
            return web.json_response(self._tokens(refresh))
        return web.json_response({"status": "BAD_GRANT_TYPE", "message": "unknown grant_type",
                                  "error": "unsupported_grant_type"}, status=400)

    async def token_info(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self.access:
            return _error(404, "OBJECT_NOT_FOUND", "Token not found")
        return web.json_response({"token": request.match_info["token"], "user": "desk@northside.example",
                                  "hub_domain": "northside.hubspot.com", "hub_id": self.portal_id,
                                  "app_id": 77, "token_type": "access", "scopes": ["oauth"]})

    # --- CRM -----------------------------------------------------------------------------------

    def _page(self, items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
        page, following = offset_page(items, int(after) if after and after.isdigit() else 0, min(limit, self.page_size))
        body: dict[str, Any] = {"total": len(items), "results": page}
        if following is not None:
            body["paging"] = {"next": {"after": following}}
        return body

    async def list_owners(self, request: web.Request) -> web.Response:
        return web.json_response(self._page(self.owners, request.query.get("after"),
                                            int(request.query.get("limit", "100"))))

    async def create_property(self, request: web.Request) -> web.Response:
        kind = request.match_info["type"]
        body = await request.json()
        name = str(body.get("name") or "")
        if not name or body.get("type") is None or body.get("groupName") is None:
            return _error(400, "VALIDATION_ERROR", "Property definition is missing name, type or groupName")
        if name in self.custom.setdefault(kind, set()):
            return _error(409, "OBJECT_ALREADY_EXISTS", f"Property named '{name}' already exists.")
        self.custom[kind].add(name)
        return web.json_response({"name": name, "label": body.get("label"), "type": body["type"]}, status=201)

    def _known(self, kind: str) -> set[str]:
        return (_MEETING_PROPS if kind == "meetings" else _CONTACT_PROPS) | self.custom.get(kind, set())

    def _store(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.meetings if kind == "meetings" else self.contacts

    @staticmethod
    def _match(props: dict[str, Any], f: dict[str, Any]) -> bool:
        value, op, want = props.get(f["propertyName"]), f.get("operator"), f.get("value")
        if op == "HAS_PROPERTY":
            return value not in (None, "")
        if op == "NOT_HAS_PROPERTY":
            return value in (None, "")
        if value in (None, ""):
            return False
        if op == "EQ":
            return str(value).lower() == str(want).lower()
        both_numbers = str(value).isdigit() and str(want).isdigit()
        left, right = (int(value), int(want)) if both_numbers else (str(value), str(want))
        return {"GT": left > right, "GTE": left >= right, "LT": left < right, "LTE": left <= right}.get(
            str(op), False)

    def _object(self, kind: str, oid: str, wanted: list[str]) -> dict[str, Any]:
        props = self._store(kind)[oid]
        shown = {k: props.get(k) for k in (wanted or list(props))}
        return {"id": oid, "properties": {**shown, "hs_object_id": oid}, "archived": False,
                "updatedAt": props.get("hs_lastmodifieddate")}

    async def search(self, request: web.Request) -> web.Response:
        kind = request.match_info["type"]
        if kind not in ("meetings", "contacts"):
            return _error(404, "OBJECT_NOT_FOUND", f"Unknown object type {kind}")
        body = await request.json()
        known = self._known(kind)
        groups = body.get("filterGroups") or []
        for g in groups:
            for f in g.get("filters") or []:
                if f.get("propertyName") not in known:
                    return _error(400, "VALIDATION_ERROR", f"There was a problem with the request: property "
                                  f"{f.get('propertyName')!r} does not exist")
        found = [oid for oid, props in self._store(kind).items()
                 if not groups or any(all(self._match(props, f) for f in g.get("filters") or []) for g in groups)]
        for sort in reversed(body.get("sorts") or []):
            name = sort.get("propertyName")
            found.sort(key=lambda oid, n=name: int(str(self._store(kind)[oid].get(n) or 0))
                       if str(self._store(kind)[oid].get(n) or "0").isdigit() else 0,
                       reverse=sort.get("direction") == "DESCENDING")
        items = [self._object(kind, oid, list(body.get("properties") or [])) for oid in found]
        return web.json_response(self._page(items, body.get("after"), int(body.get("limit") or 10)))

    def _unknown(self, kind: str, props: dict[str, Any]) -> str | None:
        bad = [k for k in props if k not in self._known(kind)]
        return bad[0] if bad else None

    async def create_contact(self, request: web.Request) -> web.Response:
        props = dict((await request.json()).get("properties") or {})
        if (bad := self._unknown("contacts", props)) is not None:
            return _error(400, "VALIDATION_ERROR", f"Property \"{bad}\" does not exist")
        email = str(props.get("email") or "").lower()
        for cid, c in self.contacts.items():
            if email and c.get("email") == email:
                return _error(409, "CONFLICT", f"Contact already exists. Existing ID: {cid}")
        cid = str(next(self._ids))
        self.contacts[cid] = {**props, "email": email, "hs_lastmodifieddate": self._now()}
        return web.json_response(self._object("contacts", cid, []), status=201)

    async def create_meeting(self, request: web.Request) -> web.Response:
        body = await request.json()
        props = dict(body.get("properties") or {})
        if (bad := self._unknown("meetings", props)) is not None:
            return _error(400, "VALIDATION_ERROR", f"Property \"{bad}\" does not exist")
        if not props.get("hs_timestamp"):
            return _error(400, "VALIDATION_ERROR", "Property values were not valid: hs_timestamp is required")
        contacts = []
        for a in body.get("associations") or []:
            to = str((a.get("to") or {}).get("id") or "")
            types = [t.get("associationTypeId") for t in a.get("types") or []]
            if to not in self.contacts or 200 not in types:
                return _error(400, "VALIDATION_ERROR", f"invalid association to {to}")
            contacts.append(to)
        mid = str(next(self._ids))
        self.meetings[mid] = {**props, "hs_lastmodifieddate": self._now()}
        self.links[mid] = contacts
        if self.lose_next_create:
            self.lose_next_create = False
            return _error(502, "BAD_GATEWAY", "upstream timed out")
        return web.json_response(self._object("meetings", mid, []), status=201)

    async def get_meeting(self, request: web.Request) -> web.Response:
        mid = request.match_info["id"]
        if mid not in self.meetings:
            return _error(404, "OBJECT_NOT_FOUND", f"Object not found.  objectId are usually numeric. ({mid})")
        wanted = [p for p in request.query.get("properties", "").split(",") if p]
        return web.json_response(self._object("meetings", mid, wanted))

    async def update_meeting(self, request: web.Request) -> web.Response:
        mid = request.match_info["id"]
        if mid not in self.meetings:
            return _error(404, "OBJECT_NOT_FOUND", f"Object not found.  objectId are usually numeric. ({mid})")
        props = dict((await request.json()).get("properties") or {})
        if (bad := self._unknown("meetings", props)) is not None:
            return _error(400, "VALIDATION_ERROR", f"Property \"{bad}\" does not exist")
        self.meetings[mid].update(props, hs_lastmodifieddate=self._now())
        return web.json_response(self._object("meetings", mid, []))

    async def batch_links(self, request: web.Request) -> web.Response:
        inputs = [str(i.get("id")) for i in (await request.json()).get("inputs") or []]
        results = [{"from": {"id": m}, "to": [{"toObjectId": int(c), "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": 200, "label": None}]} for c in self.links.get(m, [])]}
            for m in inputs if self.links.get(m)]
        return web.json_response({"status": "COMPLETE", "results": results})

    async def batch_contacts(self, request: web.Request) -> web.Response:
        body = await request.json()
        wanted = list(body.get("properties") or [])
        ids = [str(i.get("id")) for i in body.get("inputs") or []]
        return web.json_response({"status": "COMPLETE", "results": [
            self._object("contacts", c, wanted) for c in ids if c in self.contacts]})

    # --- forms ---------------------------------------------------------------------------------

    async def form_submissions(self, request: web.Request) -> web.Response:
        found = self.forms.get(request.match_info["guid"])
        if found is None:
            return _error(404, "OBJECT_NOT_FOUND", f"Form {request.match_info['guid']} does not exist")
        limit = request.query.get("limit", "20")
        if not limit.isdigit() or not 1 <= int(limit) <= 50:
            return _error(400, "VALIDATION_ERROR", "limit must be between 1 and 50")
        newest_first = sorted(found, key=lambda item: -int(item["submittedAt"]))
        after = request.query.get("after")
        page, following = offset_page(newest_first, int(after) if after and after.isdigit() else 0, int(limit))
        body: dict[str, Any] = {"results": page}
        if following is not None:
            body["paging"] = {"next": {"after": following, "link": f"?limit={int(limit)}&after={following}"}}
        return web.json_response(body)
