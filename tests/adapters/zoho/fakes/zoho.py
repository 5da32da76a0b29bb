"""A loopback Zoho: OAuth per data centre (accounts.zoho.<dc>) and Calendar (calendar.zoho.<dc>/api/v1).

Documented behaviour (platform-apis.md, Zoho section; Zoho's API help pages): `Authorization:
Zoho-oauthtoken`, access tokens of an hour, `range` of at most 31 days, `lastmodified` listing,
`eventdata` JSON in the query for create and update, the etag in `eventdata` for an update and as a
header for a delete, 429 and then a temporary lock. Hosts are paths here: `/accounts/<dc>` and
`/calendar/<dc>`. Configurable because not verifiable: the status and code of a stale etag
(`stale_error`), that a client-chosen `uid` is kept, deleted events in a `lastmodified` listing with
estatus "deleted", the lock's length (`lock_seconds`) and the requests allowed per minute (`per_minute`).
The token endpoint answers `invalid_code` with HTTP 200, as Zoho does. `requests` counts every call.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.adapters.fakes_kit import LoopbackFake, bearer

__all__ = ["ZohoFake"]

STAMP = "%Y%m%dT%H%M%SZ"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": [{"code": code, "message": message}]}, status=status)


@dataclass
class ZohoFake(LoopbackFake):
    client_id: str = "1000.TESTCLIENT"
    client_secret: str = "zoho-test-secret"
    per_minute: int = 1000
    lock_seconds: int = 60
    stale_error: tuple[int, str] = (400, "ETAG_MISMATCH")
    clock: Callable[[], float] = time.time
    #: (dc, calendar uid) -> {event uid -> event}
    events: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    calendars: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _codes: dict[str, str] = field(default_factory=dict)
    _refresh: dict[str, str] = field(default_factory=dict)
    _access: dict[str, tuple[str, float]] = field(default_factory=dict)
    _starts: list[float] = field(default_factory=list)
    _locked_until: float = 0.0
    _etag: int = 1_700_000_000_000

    # --- the vendor's side --------------------------------------------------------------------
    def add_calendar(self, dc: str, uid: str, name: str, *, default: bool = False, owner: str = "lee@clinic.example",
                     privilege: str = "owner") -> None:
        self.calendars.setdefault(dc, []).append({"uid": uid, "name": name, "timezone": "Europe/Berlin",
                                                  "isdefault": default, "owner": owner, "privilege": privilege})
        self.events.setdefault((dc, uid), {})

    def authorize(self, dc: str) -> str:
        """The code Zoho's consent page would hand back for an account in `dc`."""
        code = "1000." + secrets.token_hex(16)
        self._codes[code] = dc
        return code

    def grant(self, dc: str) -> dict[str, Any]:
        """A credential document as a finished connect stores it (expired access token, valid refresh)."""
        refresh = "1000." + secrets.token_hex(20)
        self._refresh[refresh] = dc
        return {"refresh_token": refresh, "access_token": "expired", "expires_at": 0, "dc": dc}

    def expire_access_tokens(self) -> None:
        self._access.clear()

    def calls(self, method: str, fragment: str = "") -> int:
        return sum(1 for m, p in self.requests if m == method and fragment in p)

    # --- the server -------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/accounts/{dc}/oauth/v2/token", self.token),
            web.get("/calendar/{dc}/api/v1/calendars", self.list_calendars),
            web.get("/calendar/{dc}/api/v1/calendars/{cal}/events", self.list_events),
            web.post("/calendar/{dc}/api/v1/calendars/{cal}/events", self.create),
            web.get("/calendar/{dc}/api/v1/calendars/{cal}/events/{uid}", self.get_event),
            web.put("/calendar/{dc}/api/v1/calendars/{cal}/events/{uid}", self.update),
            web.delete("/calendar/{dc}/api/v1/calendars/{cal}/events/{uid}", self.delete),
        ]

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if request.path.startswith("/accounts/"):
            return await handler(request)
        now = self.clock()
        if now < self._locked_until:
            return _error(429, "TOO_MANY_REQUESTS", "The account is temporarily locked")
        self._starts = [t for t in self._starts if now - t < 60] + [now]
        if len(self._starts) > self.per_minute:
            self._locked_until = now + self.lock_seconds
            return _error(429, "TOO_MANY_REQUESTS", "API limit exceeded; the account is temporarily locked")
        owner = self._access.get(bearer(request, "Zoho-oauthtoken"))
        if owner is None or owner[0] != request.match_info.get("dc") or owner[1] < now:
            return web.json_response({"code": "INVALID_OAUTHTOKEN", "message": "invalid oauth token"}, status=401)
        return await handler(request)

    async def token(self, request: web.Request) -> web.Response:
        dc = request.match_info["dc"]
        form = await request.post()
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client"})
        grant = form.get("grant_type")
        if grant == "authorization_code":
            if self._codes.pop(str(form.get("code")), None) != dc:
                return web.json_response({"error": "invalid_code"})  # Zoho answers this with HTTP 200
            refresh = "1000." + secrets.token_hex(20)
            self._refresh[refresh] = dc
        elif grant == "refresh_token":
            refresh = str(form.get("refresh_token"))
            if self._refresh.get(refresh) != dc:
                return web.json_response({"error": "invalid_code"})
        else:
            return web.json_response({"error": "unsupported_grant_type"})
        access = "1000." + secrets.token_hex(24)
        self._access[access] = (dc, self.clock() + 3600)
        body: dict[str, Any] = {"access_token": access, "api_domain": "https://www.zohoapis.example",
                                "token_type": "Bearer", "expires_in": 3600}
        if grant == "authorization_code":
            body["refresh_token"] = refresh
        return web.json_response(body)

    async def list_calendars(self, request: web.Request) -> web.Response:
        return web.json_response({"calendars": self.calendars.get(request.match_info["dc"], [])})

    def _store(self, request: web.Request) -> dict[str, dict[str, Any]] | None:
        return self.events.get((request.match_info["dc"], request.match_info["cal"]))

    async def list_events(self, request: web.Request) -> web.Response:
        store = self._store(request)
        if store is None:
            return _error(404, "CALENDAR_NOT_FOUND", "No such calendar")
        if "lastmodified" in request.query:
            since = _parse(request.query["lastmodified"])
            found = [e for e in store.values() if _parse(e["lastmodifiedtime"]) > since]
            return web.json_response({"events": found})
        try:
            rng = json.loads(request.query["range"])
            low, high = _parse(rng["start"]), _parse(rng["end"])
        except (KeyError, ValueError, TypeError):
            return _error(400, "INVALID_RANGE", "range is required")
        if (high - low).days > 31:
            return _error(400, "INVALID_RANGE", "The range period cannot exceed 31 days")
        found = [e for e in store.values() if e["estatus"] != "deleted" and _span(e)[0] < high and _span(e)[1] > low]
        return web.json_response({"events": found})

    def _stamp(self) -> tuple[str, str]:
        self._etag += 1
        return str(self._etag), datetime.fromtimestamp(self.clock(), UTC).strftime(STAMP)

    async def create(self, request: web.Request) -> web.Response:
        store = self._store(request)
        if store is None:
            return _error(404, "CALENDAR_NOT_FOUND", "No such calendar")
        data = json.loads(request.query["eventdata"])
        uid = str(data.get("uid") or f"{uuid.uuid4().hex}@zoho.com")
        if uid in store and store[uid]["estatus"] != "deleted":
            return _error(400, "DUPLICATE_EVENT", "An event with this uid exists")
        etag, now = self._stamp()
        event = {**{k: v for k, v in data.items() if k != "etag"}, "uid": uid, "etag": etag,
                 "lastmodifiedtime": now, "createdtime": now, "estatus": "added"}
        store[uid] = event
        return web.json_response({"events": [event]}, status=201)

    def _event(self, request: web.Request) -> dict[str, Any] | None:
        store = self._store(request)
        found = store.get(request.match_info["uid"]) if store is not None else None
        return found if found is not None and found["estatus"] != "deleted" else None

    async def get_event(self, request: web.Request) -> web.Response:
        event = self._event(request)
        if event is None:
            return _error(404, "EVENT_NOT_FOUND", "No such event")
        return web.json_response({"events": [event]})

    async def update(self, request: web.Request) -> web.Response:
        event = self._event(request)
        if event is None:
            return _error(404, "EVENT_NOT_FOUND", "No such event")
        data = json.loads(request.query["eventdata"])
        if str(data.get("etag")) != event["etag"]:
            return _error(self.stale_error[0], self.stale_error[1], "The event was modified meanwhile")
        etag, now = self._stamp()
        event.update({k: v for k, v in data.items() if k not in ("etag", "uid")})
        event.update(etag=etag, lastmodifiedtime=now, estatus="updated")
        return web.json_response({"events": [event]})

    async def delete(self, request: web.Request) -> web.Response:
        event = self._event(request)
        if event is None:
            return _error(404, "EVENT_NOT_FOUND", "No such event")
        if request.headers.get("etag") != event["etag"]:
            return _error(self.stale_error[0], self.stale_error[1], "The event was modified meanwhile")
        etag, now = self._stamp()
        event.update(etag=etag, lastmodifiedtime=now, estatus="deleted")
        return web.json_response({"events": [{"uid": event["uid"], "estatus": "deleted"}]})


def _parse(value: str) -> datetime:
    return datetime.strptime(value, STAMP).replace(tzinfo=UTC)


def _span(event: dict[str, Any]) -> tuple[datetime, datetime]:
    when = event["dateandtime"]
    if event.get("isallday"):
        return (datetime.strptime(when["start"], "%Y%m%d").replace(tzinfo=UTC),
                datetime.strptime(when["end"], "%Y%m%d").replace(tzinfo=UTC))
    return _parse(when["start"]), _parse(when["end"])
