"""Client text messages through Twilio's Messages API (REST over httpx, form-encoded, basic auth).

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with To, Body and From (or
MessagingServiceSid). Twilio's error body (`code`, `message`, `more_info`, `status`) is mapped
onto the shared error tree here; 429 and 503 with Retry-After are waited out by the shared client
when short, and raised as RateLimited when long. Twilio has no idempotency key for messages, so
the core asks `find` (the account's messages to that number, newest first) before any resend.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from adapters.kit.http import make_client, parse_retry_after, send
from adapters.twilio.settings import TwilioSettings
from sync.contract import (
    AuthExpired,
    BadPayload,
    ProviderError,
    RateLimited,
    RecipientOptedOut,
    Refused,
    Unavailable,
)
from sync.contract.messages import ClientSms

__all__ = ["PROVIDER", "TwilioSms", "twilio_error"]

PROVIDER = "twilio"
API_VERSION = "2010-04-01"
#: Pages of the message list `find` reads at most (newest first; it stops at older messages anyway).
FIND_PAGES = 5
#: Clock skew allowed between Twilio's date_created and ours.
SKEW = timedelta(minutes=2)
#: Twilio's "Attempt to send to unsubscribed recipient": the number replied STOP to the sender.
OPTED_OUT = 21610
_NUMBER = re.compile(r"\+?\d[\d ().-]{5,}\d")
#: Twilio codes whose words a person should read as they are.
_PLAIN = {
    21211: "the client's phone number is not valid",
    21408: "texting that country is not enabled on the Twilio account",
    21610: "the client replied STOP to this number (Twilio will not text them)",
    21612: "Twilio cannot text that number from this sender",
    21614: "the client's number cannot receive texts",
    20003: "Twilio refused clinicbot's login; check CLINICBOT_TWILIO_ACCOUNT_SID and its token or API key",
}


def twilio_error(response: httpx.Response) -> ProviderError:
    """Twilio's error answer on the shared tree, with its code and message (never the recipient's number)."""
    status = response.status_code
    code: int | None = None
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        raw = body.get("code")
        code = raw if isinstance(raw, int) else None
        # Twilio's words often quote the number ("The 'To' number +44... is not valid"): never kept.
        message = _NUMBER.sub("<number>", str(body.get("message") or ""))[:200]
    words = _PLAIN.get(code or 0) or message or f"HTTP {status}"
    what = f"{PROVIDER}: {words}" + (f" (error {code})" if code else f" (HTTP {status})")
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 401 or code == 20003:
        return AuthExpired(what, provider=PROVIDER)
    if status == 429 or code == 20429:
        return RateLimited(what, retry_after=retry_after, provider=PROVIDER)
    if status == 503:
        return RateLimited(what, retry_after=retry_after, provider=PROVIDER) if retry_after is not None \
            else Unavailable(what, provider=PROVIDER)
    if status >= 500:
        return Unavailable(what, provider=PROVIDER)
    if code == OPTED_OUT:
        return RecipientOptedOut(what, provider=PROVIDER)
    return Refused(what, provider=PROVIDER)


def _created(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class TwilioSms:
    """Sends through one Twilio account; one shared client per sender (the leader's job opens one per run)."""

    def __init__(self, settings: TwilioSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        assert settings.enabled and settings.twilio_account_sid and settings.login
        self.settings = settings
        self._transport = transport
        self._path = f"/{API_VERSION}/Accounts/{settings.twilio_account_sid}/Messages.json"
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        """One client for the sender's life: a run's texts share its TLS connections to Twilio."""
        if self._http is None:
            self._http = make_client(self.settings.twilio_base_url,
                                     auth=httpx.BasicAuth(*(self.settings.login or ("", ""))),
                                     timeout=self.settings.twilio_timeout, transport=self._transport)
        return self._http

    async def aclose(self) -> None:
        """Close the connections (the core calls it at the end of each sending run)."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def send(self, sms: ClientSms) -> str:
        """Hand one message to Twilio; its message SID."""
        s = self.settings
        form = {"To": sms.to, "Body": sms.text}
        if sms.status_url:
            form["StatusCallback"] = sms.status_url
        if s.twilio_messaging_service_sid:
            form["MessagingServiceSid"] = s.twilio_messaging_service_sid
        else:
            form["From"] = s.twilio_from or ""
        response = await send(self._client(), PROVIDER, "POST", self._path, data=form, errors=twilio_error)
        body = _object(response)
        sid = body.get("sid")
        if not isinstance(sid, str) or not sid:
            raise BadPayload(f"{PROVIDER}: the answer to a new message has no sid", provider=PROVIDER)
        if body.get("status") == "failed":
            raise Refused(f"{PROVIDER}: the message failed at once ({body.get('error_code')})", provider=PROVIDER)
        return sid

    async def find(self, sms: ClientSms, since: datetime) -> str | None:
        """The SID of a message to `sms.to` with the same text created since `since`, if Twilio has one."""
        first = {"To": sms.to, "PageSize": "50"}
        if self.settings.twilio_from and not self.settings.twilio_messaging_service_sid:
            first["From"] = self.settings.twilio_from
        params: dict[str, str] | None = first
        url: str | None = self._path
        client = self._client()
        for _ in range(FIND_PAGES):
            if url is None:
                return None
            response = await send(client, PROVIDER, "GET", url, params=params, errors=twilio_error)
            body = _object(response)
            messages = body.get("messages")
            if not isinstance(messages, list):
                raise BadPayload(f"{PROVIDER}: a message list without messages", provider=PROVIDER)
            older = False
            for item in messages:
                if not isinstance(item, dict):
                    continue
                created = _created(item.get("date_created"))
                if created is not None and created < since - SKEW:
                    older = True
                    continue
                if item.get("to") == sms.to and item.get("body") == sms.text and isinstance(item.get("sid"), str):
                    return str(item["sid"])
            if older:
                return None
            # The next page's address carries its filters and token (an empty params would drop them).
            url, params = _next(body.get("next_page_uri")), None
        return None


def _next(value: Any) -> str | None:
    """The next page's path and query (Twilio gives it relative to the API's host)."""
    if not isinstance(value, str) or not value.startswith("/"):
        return None
    parts = urlsplit(value)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise BadPayload(f"{PROVIDER}: the answer is not JSON", provider=PROVIDER) from None
    if not isinstance(body, dict):
        raise BadPayload(f"{PROVIDER}: the answer is not a JSON object", provider=PROVIDER)
    return body
