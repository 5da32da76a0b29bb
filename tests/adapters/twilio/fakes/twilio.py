"""A loopback Twilio: the Messages resource (create and list) and the inbound-message webhook it signs.

Implements the documented behaviour the adapter relies on:
- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, HTTP basic auth with the
  account SID and auth token, or an API key SID and its secret; To in E.164, From or
  MessagingServiceSid, Body; answers 201 with the Message resource (`sid` SM..., `status` queued,
  `date_created` in RFC 2822);
- `GET` of the same path lists the account's messages newest first, filtered by To and From, paged by
  PageSize with `next_page_uri` (Page and PageToken);
- errors in Twilio's body {"code", "message", "more_info", "status"}: 401/20003 for a bad login,
  400/21211 for a To that is not a number, 400/21602 without a Body, 400/21603 without a sender,
  400/21610 for a number that replied STOP (Advanced Opt-Out), 404/20404 for another account;
- `throttle` answers the next calls 429/20429 (or 503) with Retry-After;
- `hang` keeps the next create: the message is stored, then no answer comes until `release`
  (a lost answer, or a sender that died mid-request);
- `report(sent, status)` POSTs a status callback to the message's StatusCallback, signed the same way;
- `reply(url, sender, body)` POSTs an inbound message to a webhook as Twilio does, signed with
  X-Twilio-Signature (base64 HMAC-SHA1 of the URL and the sorted form parameters, keyed with the
  auth token); STOP and START also change the fake's own opt-out list, as Twilio's do.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

__all__ = ["ACCOUNT_SID", "API_KEY", "API_SECRET", "AUTH_TOKEN", "TwilioFake", "twilio_signature"]

ACCOUNT_SID = "AC" + "1f" * 16
AUTH_TOKEN = "f" * 8 + "0123456789abcdef" + "9" * 8
API_KEY = "SK" + "2e" * 16
API_SECRET = "api-secret-" + "7" * 21
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
START = {"START", "UNSTOP"}


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """What Twilio puts in X-Twilio-Signature for a form POST (its documented algorithm)."""
    payload = url
    for name in sorted(params):
        payload += name + params[name]
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}
    return web.json_response(body, status=status, headers=headers)


@dataclass
class Sent:
    sid: str
    to: str
    sender: str
    body: str
    created: datetime
    login: str
    status_callback: str = ""

    def resource(self) -> dict[str, Any]:
        return {
            "sid": self.sid, "account_sid": ACCOUNT_SID, "to": self.to, "from": self.sender, "body": self.body,
            "status": "queued", "direction": "outbound-api", "num_segments": "1", "num_media": "0",
            "date_created": format_datetime(self.created), "date_updated": format_datetime(self.created),
            "date_sent": None, "error_code": None, "error_message": None, "price": None, "price_unit": "USD",
            "api_version": "2010-04-01", "messaging_service_sid": None,
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{self.sid}.json",
        }


@dataclass
class TwilioFake:
    number: str = "+15005550006"
    messages: list[Sent] = field(default_factory=list)
    opted_out: set[str] = field(default_factory=set)
    #: Statuses (429 or 503) with their Retry-After for the next calls, first first.
    throttle: list[tuple[int, str]] = field(default_factory=list)
    hang: int = 0
    requests: int = 0
    url: str = ""
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    _stored: asyncio.Event = field(default_factory=asyncio.Event)

    # --- the server -----------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/2010-04-01/Accounts/{account}/Messages.json", self._messages)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def release(self) -> None:
        """Let a hung create answer (too late for a sender that gave up)."""
        self._release.set()

    async def stored(self) -> None:
        """Wait until a hung create has stored its message."""
        await self._stored.wait()

    def _login(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if (user, password) in ((ACCOUNT_SID, AUTH_TOKEN), (API_KEY, API_SECRET)):
            return user
        return None

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.throttle:
            status, wait = self.throttle.pop(0)
            if status == 429:
                return _error(429, 20429, "Too Many Requests", {"Retry-After": wait})
            return _error(503, 20500, "Service Unavailable", {"Retry-After": wait})
        login = self._login(request)
        if login is None:
            return _error(401, 20003, "Authenticate")
        if request.match_info["account"] != ACCOUNT_SID:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        if request.method == "GET":
            return self._list(request)
        if request.method != "POST":
            return _error(405, 20004, "Method not allowed")
        if not request.content_type.startswith("application/x-www-form-urlencoded"):
            return _error(400, 20001, "Missing required parameter To in the post body")
        form = await request.post()
        to, body = str(form.get("To", "")), str(form.get("Body", ""))
        sender = str(form.get("From") or "")
        if not form.get("To"):
            return _error(400, 21604, "A 'To' phone number is required.")
        if not _E164.fullmatch(to):
            return _error(400, 21211, f"Invalid 'To' Phone Number: {to[:3]}XXXX")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if not sender and not form.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message")
        if sender and sender != self.number:
            return _error(400, 21660, f"Mismatch between the 'From' number {sender} and the account")
        if to in self.opted_out:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        sent = Sent("SM" + secrets.token_hex(16), to, sender or self.number, body, datetime.now(UTC), login,
                    str(form.get("StatusCallback") or ""))
        self.messages.append(sent)
        if self.hang:
            self.hang -= 1
            self._stored.set()
            await self._release.wait()
        return web.json_response(sent.resource(), status=201)

    def _list(self, request: web.Request) -> web.Response:
        q = request.query
        found = [m for m in reversed(self.messages)
                 if (not q.get("To") or m.to == q["To"]) and (not q.get("From") or m.sender == q["From"])]
        size = max(1, min(1000, int(q.get("PageSize", "50"))))
        page = int(q.get("Page", "0"))
        if page and q.get("PageToken") != f"PA{page}":
            return _error(400, 20001, "Invalid PageToken")
        chunk = found[page * size:(page + 1) * size]
        base = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        filters = "".join(f"&{k}={quote(v)}" for k, v in (("To", q.get("To")), ("From", q.get("From"))) if v)
        more = (page + 1) * size < len(found)
        return web.json_response({
            "messages": [m.resource() for m in chunk], "page": page, "page_size": size,
            "first_page_uri": f"{base}?PageSize={size}&Page=0{filters}",
            "next_page_uri": f"{base}?PageSize={size}&Page={page + 1}&PageToken=PA{page + 1}{filters}" if more else None,
            "previous_page_uri": None, "start": page * size, "end": page * size + len(chunk),
            "uri": f"{base}?PageSize={size}&Page={page}{filters}",
        })

    # --- inbound ----------------------------------------------------------------------------------

    def inbound_form(self, sender: str, body: str, sid: str | None = None) -> dict[str, str]:
        """The form Twilio POSTs for a text received on the fake's number."""
        form = {
            "ToCountry": "US", "ToState": "CA", "SmsMessageSid": "", "NumMedia": "0", "ToCity": "",
            "FromZip": "", "SmsSid": "", "FromState": "", "SmsStatus": "received", "FromCity": "", "Body": body,
            "FromCountry": "GB", "To": self.number, "ToZip": "", "NumSegments": "1", "MessageSid": "",
            "AccountSid": ACCOUNT_SID, "From": sender, "ApiVersion": "2010-04-01",
        }
        word = " ".join(body.split()).upper()
        if word in STOP | START:
            form["OptOutType"] = "STOP" if word in STOP else "START"
        message_sid = sid or "SM" + secrets.token_hex(16)
        form["MessageSid"] = form["SmsMessageSid"] = form["SmsSid"] = message_sid
        return form

    async def reply(self, url: str, sender: str, body: str, *, token: str = AUTH_TOKEN,
                    form: dict[str, str] | None = None, post_to: str | None = None) -> tuple[int, str, dict[str, str]]:
        """A client texts `body` to the fake's number: Twilio's webhook to `url` (the address configured
        at Twilio, which it signs; `post_to` is where it lands, behind a proxy); (status, answer, form)."""
        if form is None:  # a new text: Twilio's own opt-out list follows it (a replayed form is not a text)
            form = self.inbound_form(sender, body)
            word = " ".join(body.split()).upper()
            if word in STOP:
                self.opted_out.add(sender)
            elif word in START:
                self.opted_out.discard(sender)
        headers = {"X-Twilio-Signature": twilio_signature(token, url, form),
                   "User-Agent": "TwilioProxy/1.1"}
        async with aiohttp.ClientSession() as session, session.post(post_to or url, data=form, headers=headers) as response:
            return response.status, await response.text(), form

    async def report(self, sent: Sent, status: str, error_code: str = "", *, token: str = AUTH_TOKEN,
                     post_to: str | None = None, form: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        """Twilio's status callback for `sent` to its StatusCallback URL (landing at `post_to`); (status, form)."""
        assert sent.status_callback, "the message was sent without a StatusCallback"
        if form is None:
            form = {"MessageSid": sent.sid, "SmsSid": sent.sid, "SmsStatus": status, "MessageStatus": status,
                    "To": sent.to, "From": sent.sender, "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01"}
            if error_code:
                form["ErrorCode"] = error_code
        headers = {"X-Twilio-Signature": twilio_signature(token, sent.status_callback, form)}
        async with aiohttp.ClientSession() as session, \
                session.post(post_to or sent.status_callback, data=form, headers=headers) as response:
            return response.status, form
