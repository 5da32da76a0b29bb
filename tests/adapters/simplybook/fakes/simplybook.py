"""A loopback SimplyBook.me speaking JSON-RPC 2.0: admin login, bookings, edit and cancel, callbacks.

Documented behaviour (platform-apis.md, SimplyBook section): `getUserToken(company, login, password)`
on `/login` answers a token, or JSON-RPC errors -33001 (no such company) / -33003 (user or password
wrong) / -33004 (user blocked), all with HTTP 200; `/admin` wants `X-Company-Login` and `X-User-Token`.
What is not documented is configurable here: the error a rejected or expired token gets
(`token_error`), the error for an unknown booking (`not_found_error`), a refusal of an edit
(`refuse`), and HTTP 429 with Retry-After for the next `throttle` requests. Several companies share
one fake, so a callback naming another company's booking can be tried. `requests` counts every call.

The public (company) API too: `getToken(company, api key)` on `/login` (-33002 for a wrong key), calls
on `/` with `X-Company-Login` and `X-Token`, and `getBookingDetails(id, sign)`, which answers only when
sign = md5(id + the booking's hash + the company's secret key); a wrong sign gets `sign_error`
(its code and words are not documented, so configurable) and another company's id `not_found_error`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from tests.adapters.fakes_kit import WebhookFake

__all__ = ["SimplyBookFake"]

_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass
class SimplyBookFake(WebhookFake):
    company: str = "clinic"
    user: str = "clinicbot"
    password: str = "sb-test-password"
    timezone: str = "Europe/London"
    blocked: bool = False
    throttle: int = 0
    deliver: bool = True
    api_key: str = "sb-public-api-key"
    secret_key: str = "sb-secret-key"
    sign_error: tuple[int, str] = (-32085, "Signature error")
    token_error: tuple[int, str] = (-32600, "Access denied")
    not_found_error: tuple[int, str] = (-32052, "Booking not found")
    units: dict[str, dict[str, Any]] = field(default_factory=dict)
    bookings: dict[int, dict[str, Any]] = field(default_factory=dict)
    refuse: dict[int, tuple[int, str]] = field(default_factory=dict)
    #: Methods the admin user may not call: answered like a bad token ("Access denied").
    denied: set[str] = field(default_factory=set)
    callback_url: str = ""
    #: (path, method) of every call, logins included.
    held: list[bytes] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict)
    _public_tokens: dict[str, str] = field(default_factory=dict)
    _next_id: int = 100

    # --- the vendor's side, as a test drives it ---------------------------------------------
    def add_unit(self, unit_id: str, name: str) -> None:
        self.units[unit_id] = {"id": unit_id, "name": name, "email": "", "is_visible": "1"}

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (SimplyBook's last about an hour)."""
        self._tokens.clear()
        self._public_tokens.clear()

    async def book(self, unit_id: str, start: datetime, minutes: int = 30, *, company: str | None = None,
                   client: str = "Jane Roe", service: str = "Reflexology") -> dict[str, Any]:
        """A booking made by a client on SimplyBook's booking page (a callback follows)."""
        self._next_id += 1
        zone = ZoneInfo(self.timezone)
        local = start.astimezone(zone)
        booking = {
            "id": str(self._next_id), "code": secrets.token_hex(4), "hash": secrets.token_hex(16),
            "company": company or self.company, "start_date": local.strftime(_FORMAT),
            "end_date": (local + timedelta(minutes=minutes)).strftime(_FORMAT), "unit_id": unit_id,
            "unit": self.units.get(unit_id, {}).get("name", ""), "event_id": "3", "event": service, "client_id": "7",
            "client": client, "client_email": "jane@example.org", "client_phone": "+10000000000",
            "is_confirm": "1", "comment": "", "location": "Room 1",
        }
        self.bookings[self._next_id] = booking
        await self.announce("create", booking)
        return booking

    async def move_on_simplybook(self, booking_id: int, start: datetime) -> None:
        booking = self.bookings[booking_id]
        self._set_times(booking, start, self._minutes(booking))
        await self.announce("change", booking)

    async def announce(self, kind: str, booking: dict[str, Any]) -> None:
        if not self.callback_url or booking["company"] != self.company:
            return
        body = json.dumps({"booking_id": booking["id"], "booking_hash": booking["hash"], "company": booking["company"],
                           "notification_type": kind, "webhook_timestamp": int(time.time() * 1000)}).encode()
        if not self.deliver:
            self.held.append(body)
            return
        self._later(self.post(body))

    async def post(self, body: bytes) -> int:
        return await self.send_webhook(self.callback_url, body, {"content-type": "application/json"})

    def calls(self, method: str) -> int:
        return sum(1 for _, m in self.requests if m == method)

    # --- the server ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.post("/login", self._login), web.post("/admin", self._admin), web.post("/", self._public)]

    async def _read(self, request: web.Request) -> tuple[Any, str, list[Any]] | web.Response:
        try:
            call = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(None, -32700, "Parse error")
        if not isinstance(call, dict) or call.get("jsonrpc") != "2.0" or not isinstance(call.get("method"), str):
            return _error(None, -32600, "Invalid Request")
        params = call.get("params") or []
        self.requests.append((request.path, call["method"]))
        if self.throttle > 0:
            self.throttle -= 1
            return web.json_response({"error": "Too many requests"}, status=429, headers={"Retry-After": "1"})
        return call.get("id"), call["method"], params if isinstance(params, list) else [params]

    async def _login(self, request: web.Request) -> web.Response:
        read = await self._read(request)
        if isinstance(read, web.Response):
            return read
        rpc_id, method, params = read
        if method == "getToken":
            return self._get_token(rpc_id, params)
        if method != "getUserToken":
            return _error(rpc_id, -32601, "Method not found")
        if len(params) != 3:
            return _error(rpc_id, -32602, "Invalid params")
        company, user, password = (str(p) for p in params)
        if company != self.company:
            return _error(rpc_id, -33001, "Company does not exist")
        if user != self.user or password != self.password:
            return _error(rpc_id, -33003, "User with this login and password not found")
        if self.blocked:
            return _error(rpc_id, -33004, "User is blocked")
        token = secrets.token_hex(32)
        self._tokens[token] = company
        return _result(rpc_id, token)

    def _get_token(self, rpc_id: Any, params: list[Any]) -> web.Response:
        if len(params) != 2:
            return _error(rpc_id, -32602, "Invalid params")
        company, key = (str(p) for p in params)
        if company != self.company:
            return _error(rpc_id, -33001, "Company does not exist")
        if key != self.api_key:
            return _error(rpc_id, -33002, "Api key not found")
        token = secrets.token_hex(32)
        self._public_tokens[token] = company
        return _result(rpc_id, token)

    async def _public(self, request: web.Request) -> web.Response:
        read = await self._read(request)
        if isinstance(read, web.Response):
            return read
        rpc_id, method, params = read
        company = request.headers.get("X-Company-Login", "")
        if self._public_tokens.get(request.headers.get("X-Token", "")) != company or not company:
            return _error(rpc_id, *self.token_error)
        if method != "getBookingDetails":
            return _error(rpc_id, -32601, "Method not found")
        if len(params) != 2:
            return _error(rpc_id, -32602, "Invalid params")
        try:
            booking = self._booking(company, params[0])
        except _RpcError as exc:
            return _error(rpc_id, exc.code, exc.message)
        except (TypeError, ValueError):
            return _error(rpc_id, -32602, "Invalid params")
        expected = hashlib.md5(f"{booking['id']}{booking['hash']}{self.secret_key}".encode(), usedforsecurity=False).hexdigest()
        if str(params[1]) != expected:
            return _error(rpc_id, *self.sign_error)
        return _result(rpc_id, self._details(booking))

    async def _admin(self, request: web.Request) -> web.Response:
        read = await self._read(request)
        if isinstance(read, web.Response):
            return read
        rpc_id, method, params = read
        company = request.headers.get("X-Company-Login", "")
        if self._tokens.get(request.headers.get("X-User-Token", "")) != company or not company \
                or method in self.denied:
            return _error(rpc_id, *self.token_error)
        handler = getattr(self, f"_rpc_{method}", None)
        if handler is None:
            return _error(rpc_id, -32601, "Method not found")
        try:
            return _result(rpc_id, handler(company, *params))
        except _RpcError as exc:
            return _error(rpc_id, exc.code, exc.message)
        except (TypeError, ValueError, KeyError):
            return _error(rpc_id, -32602, "Invalid params")

    # The methods are named as SimplyBook names them (getCompanyInfo -> _rpc_getCompanyInfo).
    def _rpc_getCompanyInfo(self, company: str) -> dict[str, Any]:
        return {"login": company, "name": company.title(), "timezone": self.timezone}

    def _rpc_getUnitList(self, company: str, *flags: Any) -> dict[str, Any]:
        return dict(self.units)

    def _rpc_getBookings(self, company: str, query: dict[str, Any]) -> list[dict[str, Any]]:
        low, high = str(query["date_from"]), str(query["date_to"])
        found = [b for b in self.bookings.values() if b["company"] == company and low <= b["start_date"][:10] <= high
                 and ("unit_group_id" not in query or b["unit_id"] == str(query["unit_group_id"]))
                 and (query.get("booking_type") == "all" or b["is_confirm"] == "1")]
        return sorted(found, key=lambda b: b["start_date"])

    def _booking(self, company: str, booking_id: Any) -> dict[str, Any]:
        booking = self.bookings.get(int(booking_id))
        if booking is None or booking["company"] != company:
            raise _RpcError(*self.not_found_error)
        return booking

    def _rpc_getBookingDetails(self, company: str, booking_id: Any) -> dict[str, Any]:
        return self._details(self._booking(company, booking_id))

    @staticmethod
    def _details(b: dict[str, Any]) -> dict[str, Any]:
        # The details name some fields differently from the listing.
        return {"id": b["id"], "code": b["code"], "start_date_time": b["start_date"], "end_date_time": b["end_date"],
                "unit_id": b["unit_id"], "unit_name": b["unit"], "event_id": b["event_id"], "event_name": b["event"],
                "client_id": b["client_id"], "client_name": b["client"], "client_email": b["client_email"],
                "client_phone": b["client_phone"], "is_confirmed": b["is_confirm"], "comment": b["comment"],
                "location": b["location"]}

    def _rpc_editBook(self, company: str, booking_id: Any, event_id: Any, unit_id: Any, client_id: Any,
                      start_date: str, start_time: str, end_date: str, end_time: str, offset: Any = 0,
                      additional: Any = None) -> dict[str, Any]:
        booking = self._booking(company, booking_id)
        if int(booking_id) in self.refuse:
            raise _RpcError(*self.refuse[int(booking_id)])
        if booking["is_confirm"] != "1":
            raise _RpcError(-32070, "Booking is cancelled")
        start = datetime.strptime(f"{start_date} {start_time}", _FORMAT)
        end = datetime.strptime(f"{end_date} {end_time}", _FORMAT)
        if end <= start:
            raise _RpcError(-32071, "End time must be after start time")
        booking.update(start_date=start.strftime(_FORMAT), end_date=end.strftime(_FORMAT),
                       unit_id=str(unit_id), event_id=str(event_id), client_id=str(client_id))
        self._later(self.announce("change", booking))
        return {"bookings": [{"id": booking["id"], "hash": booking["hash"]}]}

    def _rpc_cancelBooking(self, company: str, booking_id: Any) -> bool:
        booking = self._booking(company, booking_id)
        booking["is_confirm"] = "0"
        self._later(self.announce("cancel", booking))
        return True

    @staticmethod
    def _minutes(booking: dict[str, Any]) -> int:
        start = datetime.strptime(booking["start_date"], _FORMAT)
        return int((datetime.strptime(booking["end_date"], _FORMAT) - start).total_seconds() // 60)

    def _set_times(self, booking: dict[str, Any], start: datetime, minutes: int) -> None:
        local = start.astimezone(ZoneInfo(self.timezone))
        booking["start_date"] = local.strftime(_FORMAT)
        booking["end_date"] = (local + timedelta(minutes=minutes)).strftime(_FORMAT)


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _result(rpc_id: Any, result: Any) -> web.Response:
    return web.json_response({"jsonrpc": "2.0", "result": result, "id": rpc_id})


def _error(rpc_id: Any, code: int, message: str) -> web.Response:
    """SimplyBook answers JSON-RPC errors with HTTP 200."""
    return web.json_response({"jsonrpc": "2.0", "error": {"code": code, "message": message, "data": None},
                              "id": rpc_id})
