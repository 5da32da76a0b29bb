"""A loopback Salesforce org: OAuth (web server flow and refresh) at its login host, and the REST API
at its instance: SOQL `query` / `queryAll` with `nextRecordsUrl` batches, sObject create, update,
delete, and upsert by an external id field.

Documented behaviour (developer.salesforce.com REST API guide; platform-apis.md):
- errors are a JSON list of {message, errorCode, fields}; an unknown or expired session is 401
  INVALID_SESSION_ID; the org's API allowance spent is 403 REQUEST_LIMIT_EXCEEDED (for the next
  `limit_exceeded` calls); an unknown field 400 INVALID_FIELD; a missing required one 400
  REQUIRED_FIELD_MISSING; a bad query 400 MALFORMED_QUERY;
- `PATCH /sobjects/Event/<field>/<value>` creates (201, created: true) or updates (200, created:
  false) the one Event with that value; an unknown external id field is 404 NOT_FOUND;
- queries answer {totalSize, done, records, nextRecordsUrl} `batch_size` records at a time; only
  `queryAll` returns deleted records (IsDeleted true);
- every write stamps SystemModstamp from the fake's clock (one second later each time);
- a token answer carries access_token, instance_url (this server), id and issued_at, and no expiry;
  refresh answers no new refresh token.
The SOQL understood is what clinicbot sends: SELECT fields (with Who.Name-style lookups) FROM one
object WHERE comparisons joined by AND, ORDER BY one field, LIMIT.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.adapters.fakes_kit import LoopbackFake

__all__ = ["SalesforceFake"]

_PREFIX = {"Event": "00U", "Contact": "003", "Lead": "00Q", "User": "005"}
_FIELDS = {
    "Event": {"Id", "Subject", "StartDateTime", "EndDateTime", "Location", "OwnerId", "WhoId", "ShowAs",
              "Description", "IsDeleted", "SystemModstamp", "DurationInMinutes"},
    "Contact": {"Id", "Email", "FirstName", "LastName", "Name", "Phone", "IsDeleted", "SystemModstamp"},
    "Lead": {"Id", "Email", "FirstName", "LastName", "Name", "Company", "Phone", "LeadSource", "IsConverted",
             "IsDeleted", "SystemModstamp"},
    "User": {"Id", "Name", "Email", "IsActive", "TimeZoneSidKey", "IsDeleted", "SystemModstamp"},
}
_CONDITION = re.compile(
    r"\s*(?P<field>[A-Za-z_][\w.]*)\s*(?P<op>!=|>=|<=|=|>|<)\s*"
    r"(?P<value>'(?:[^'\\]|\\.)*'|true|false|null|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\s*(?:AND\s+|$)")
_QUERY = re.compile(r"^SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)(?:\s+WHERE\s+(?P<where>.+?))?"
                    r"(?:\s+ORDER BY\s+(?P<order>\w+)(?:\s+(?P<dir>ASC|DESC))?)?(?:\s+LIMIT\s+(?P<limit>\d+))?$",
                    re.DOTALL)


def _errors(status: int, code: str, message: str, fields: list[str] | None = None,
            headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response([{"message": message, "errorCode": code, "fields": fields or []}], status=status,
                             headers=headers)


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _literal(text: str) -> Any:
    if text.startswith("'"):
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), text[1:-1])
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _comparable(value: Any) -> Any:
    if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value):
        return datetime.fromisoformat(value.replace("Z", "+00:00").replace("+0000", "+00:00"))
    return value


@dataclass
class SalesforceFake(LoopbackFake):
    client_id: str = "sf-consumer-key"
    client_secret: str = "sf-consumer-secret"
    version: str = "v60.0"
    external_id_fields: set[str] = field(default_factory=lambda: {"Clinicbot_Visit_Key__c"})
    batch_size: int = 2
    limit_exceeded: int = 0
    #: The org's API allowance (requests a rolling day), told in every answer's Sforce-Limit-Info.
    allowance: int = 15000
    used: int = 0
    records: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in _PREFIX})
    access: dict[str, float] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)
    codes: dict[str, str] = field(default_factory=dict)
    clock: datetime = datetime(2031, 5, 1, 10, 0, tzinfo=UTC)
    _pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # --- test helpers -----------------------------------------------------------------------

    def tick(self) -> str:
        self.clock += timedelta(seconds=1)
        return _stamp(self.clock)

    def new_id(self, obj: str) -> str:
        return f"{_PREFIX[obj]}{next(self._ids):012d}AAA"

    def add(self, obj: str, **values: Any) -> str:
        rid = self.new_id(obj)
        defaults: dict[str, Any] = {"IsConverted": False} if obj == "Lead" else {}
        row = {"Id": rid, "IsDeleted": False, **defaults, **values, "SystemModstamp": self.tick()}
        if obj in ("Contact", "Lead", "User"):
            row["Name"] = " ".join(str(v) for v in (values.get("FirstName"), values.get("LastName")) if v) or \
                values.get("Name")
        self.records[obj][rid] = row
        return rid

    def live(self, obj: str) -> list[dict[str, Any]]:
        return [r for r in self.records[obj].values() if not r.get("IsDeleted")]

    def session(self) -> str:
        token = secrets.token_urlsafe(12)
        self.access[token] = time.time() + 7200
        return token

    def expire_sessions(self) -> None:
        self.access = {t: 0.0 for t in self.access}

    def issue_code(self) -> str:
        code = secrets.token_urlsafe(8)
        self.codes[code] = "unused"
        return code

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    # --- server --------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        root = "/services/data/{version}"
        return [
            web.post("/services/oauth2/token", self.oauth_token),
            web.get(root + "/query", self.query),
            web.get(root + "/queryAll", self.query),
            web.get(root + "/query/{locator}", self.more),
            web.post(root + "/sobjects/{object}", self.create),
            web.patch(root + "/sobjects/{object}/{id}", self.update),
            web.delete(root + "/sobjects/{object}/{id}", self.delete),
            web.patch(root + "/sobjects/{object}/{field}/{value}", self.upsert),
        ]

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.path.startswith("/services/oauth2/"):
            return await handler(request)
        if request.match_info.get("version") != self.version:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.access.get(given, 0.0) <= time.time():
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if self.limit_exceeded > 0 or self.used >= self.allowance:
            self.limit_exceeded = max(self.limit_exceeded - 1, 0)
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.",
                           headers={"Sforce-Limit-Info": f"api-usage={self.allowance}/{self.allowance}"})
        self.used += 1
        response: web.StreamResponse = await handler(request)
        response.headers["Sforce-Limit-Info"] = f"api-usage={self.used}/{self.allowance}"
        return response

    # --- OAuth ---------------------------------------------------------------------------------

    def _token_answer(self, refresh: str | None) -> dict[str, Any]:
        answer = {"access_token": self.session(), "instance_url": self.url, "token_type": "Bearer",
                  "id": f"{self.url}/id/00D000000000001AAA/005000000000001AAA",
                  "issued_at": str(int(time.time() * 1000)), "signature": "c2lnbmF0dXJl"}
        if refresh is not None:
            answer["refresh_token"] = refresh
        return answer

    async def oauth_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client", "error_description": "invalid client credentials"},
                                     status=400)
        if form.get("grant_type") == "authorization_code":
            code = str(form.get("code") or "")
            if self.codes.get(code) != "unused":
                return web.json_response({"error": "invalid_grant", "error_description": "authentication failure"},
                                         status=400)
            self.codes[code] = "used"
            refresh = secrets.token_urlsafe(12)
            self.refresh_tokens.add(refresh)
            return web.json_response(self._token_answer(refresh))
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return web.json_response({"error": "invalid_grant", "error_description": "expired access/refresh "
                                          "token"}, status=400)
            return web.json_response(self._token_answer(None))
        return web.json_response({"error": "unsupported_grant_type", "error_description": "grant type not "
                                  "supported"}, status=400)

    # --- SOQL ----------------------------------------------------------------------------------

    def _lookup(self, row: dict[str, Any], name: str) -> Any:
        if "." not in name:
            return row.get(name)
        relation, attribute = name.split(".", 1)
        target = row.get(f"{relation}Id")
        for obj in ("Contact", "Lead", "User"):
            if target in self.records[obj]:
                return self.records[obj][target].get(attribute)
        return None

    def _project(self, obj: str, row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": obj, "url": f"/services/data/{self.version}/sobjects/{obj}/"
                                                                  f"{row['Id']}"}}
        for name in fields:
            if "." in name:
                relation, attribute = name.split(".", 1)
                target = row.get(f"{relation}Id")
                if target is None:
                    out[relation] = None
                    continue
                kind = next((o for o in ("Contact", "Lead", "User") if target in self.records[o]), "Contact")
                holder = out.setdefault(relation, {"attributes": {"type": kind}})
                holder[attribute] = self._lookup(row, name)
            else:
                out[name] = row.get(name)
        return out

    def _run(self, soql: str, deleted: bool) -> list[dict[str, Any]] | web.Response:
        parsed = _QUERY.match(soql.strip())
        if parsed is None or parsed["object"] not in self.records:
            return _errors(400, "MALFORMED_QUERY", f"unexpected token in: {soql[:80]}")
        obj = parsed["object"]
        known = _FIELDS[obj] | (self.external_id_fields if obj == "Event" else set())
        fields = [f.strip() for f in parsed["fields"].split(",")]
        conditions: list[tuple[str, str, Any]] = []
        where = parsed["where"] or ""
        position = 0
        while position < len(where):
            found = _CONDITION.match(where, position)
            if found is None or found.end() == position:
                return _errors(400, "MALFORMED_QUERY", f"unexpected token near: {where[position:position + 40]}")
            conditions.append((found["field"], found["op"], _literal(found["value"])))
            position = found.end()
        for name in [f for f in fields if "." not in f] + [c[0] for c in conditions]:
            if name not in known:
                return _errors(400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj}'.")
        rows = [r for r in self.records[obj].values() if deleted or not r.get("IsDeleted")]

        def keep(row: dict[str, Any]) -> bool:
            for name, op, want in conditions:
                have = _comparable(self._lookup(row, name))
                if op in ("=", "!="):
                    same = (have or None) == want if want is None else \
                        (str(have).lower() == str(want).lower() if isinstance(want, str) else have == want)
                    if same != (op == "="):
                        return False
                    continue
                if have is None or not {">": have > want, ">=": have >= want, "<": have < want,
                                        "<=": have <= want}[op]:
                    return False
            return True

        rows = [r for r in rows if keep(r)]
        if parsed["order"]:
            rows.sort(key=lambda r: str(r.get(parsed["order"]) or ""), reverse=parsed["dir"] == "DESC")
        if parsed["limit"]:
            rows = rows[:int(parsed["limit"])]
        return [self._project(obj, r, fields) for r in rows]

    def _batch(self, records: list[dict[str, Any]], offset: int, locator: str) -> web.Response:
        chunk = records[offset:offset + self.batch_size]
        done = offset + self.batch_size >= len(records)
        body: dict[str, Any] = {"totalSize": len(records), "done": done, "records": chunk}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/{self.version}/query/{locator}-{offset + self.batch_size}"
        return web.json_response(body)

    async def query(self, request: web.Request) -> web.Response:
        found = self._run(request.query.get("q", ""), deleted=request.path.endswith("/queryAll"))
        if isinstance(found, web.Response):
            return found
        locator = "01g" + secrets.token_hex(6)
        self._pending[locator] = found
        return self._batch(found, 0, locator)

    async def more(self, request: web.Request) -> web.Response:
        locator, _, offset = request.match_info["locator"].rpartition("-")
        if locator not in self._pending or not offset.isdigit():
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._batch(self._pending[locator], int(offset), locator)

    # --- sObjects ------------------------------------------------------------------------------

    def _bad_fields(self, obj: str, body: dict[str, Any]) -> web.Response | None:
        known = _FIELDS[obj] | (self.external_id_fields if obj == "Event" else set())
        for name in body:
            if name not in known or name in ("Id", "IsDeleted", "SystemModstamp", "Name"):
                return _errors(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}",
                               [name])
        who = body.get("WhoId")
        if who and who not in self.records["Contact"] and who not in self.records["Lead"]:
            return _errors(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["WhoId"])
        return None

    async def create(self, request: web.Request) -> web.Response:
        obj = request.match_info["object"]
        if obj not in self.records:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        body = await request.json()
        if (bad := self._bad_fields(obj, body)) is not None:
            return bad
        required = {"Lead": ["LastName", "Company"], "Contact": ["LastName"],
                    "Event": ["StartDateTime", "EndDateTime"]}.get(obj, [])
        missing = [f for f in required if not body.get(f)]
        if missing:
            return _errors(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                           missing)
        rid = self.add(obj, **{k: v for k, v in body.items() if v is not None})
        return web.json_response({"id": rid, "success": True, "errors": []}, status=201)

    async def update(self, request: web.Request) -> web.Response:
        obj, rid = request.match_info["object"], request.match_info["id"]
        row = self.records.get(obj, {}).get(rid)
        if row is None or row.get("IsDeleted"):
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        body = await request.json()
        if (bad := self._bad_fields(obj, body)) is not None:
            return bad
        row.update(body, SystemModstamp=self.tick())
        return web.Response(status=204)

    async def delete(self, request: web.Request) -> web.Response:
        obj, rid = request.match_info["object"], request.match_info["id"]
        row = self.records.get(obj, {}).get(rid)
        if row is None or row.get("IsDeleted"):
            return _errors(404, "ENTITY_IS_DELETED", "entity is deleted")
        row.update(IsDeleted=True, SystemModstamp=self.tick())
        return web.Response(status=204)

    async def upsert(self, request: web.Request) -> web.Response:
        obj, name, value = request.match_info["object"], request.match_info["field"], request.match_info["value"]
        if obj != "Event" or name not in self.external_id_fields:
            return _errors(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: "
                                             f"{name}")
        body = await request.json()
        if (bad := self._bad_fields(obj, body)) is not None:
            return bad
        matches = [r for r in self.live(obj) if r.get(name) == value]
        if len(matches) > 1:
            return web.json_response([f"/services/data/{self.version}/sobjects/Event/{r['Id']}" for r in matches],
                                     status=300)
        if matches:
            matches[0].update({k: v for k, v in body.items()}, SystemModstamp=self.tick())
            return web.json_response({"id": matches[0]["Id"], "success": True, "errors": [], "created": False})
        if not body.get("StartDateTime") or not body.get("EndDateTime"):
            return _errors(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [StartDateTime]",
                           ["StartDateTime"])
        rid = self.add(obj, **{k: v for k, v in body.items() if v is not None}, **{name: value})
        return web.json_response({"id": rid, "success": True, "errors": [], "created": True}, status=201)
