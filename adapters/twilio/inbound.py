"""A client's text to the practice's Twilio number: the X-Twilio-Signature check, and STOP / START.

Twilio signs each webhook with the account's auth token: base64(HMAC-SHA1(token, URL + every POST
parameter's name and value, sorted by name)), where URL is the full address Twilio called (its
query included). A request whose signature is missing or wrong is refused before anything in it is
used. Twilio's own opt-out keywords (the whole message, case and spaces ignored) say what the client
wants; Twilio also adds `OptOutType` (STOP, START, HELP) with Advanced Opt-Out, which wins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from adapters.twilio.settings import twilio_settings
from sync.contract import BadPayload, Refused
from sync.contract.integration import HostSettings, WebhookAnswer, WebhookRequest
from sync.contract.messages import InboundSms, SmsStatus

__all__ = ["ANSWER", "START_WORDS", "STOP_WORDS", "read_inbound", "read_status", "signature"]

PROVIDER = "twilio"
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP"})
#: Twilio reads the answer as TwiML: an empty Response sends no reply of ours (Twilio answers
#: STOP and START itself).
ANSWER = WebhookAnswer(200, '<?xml version="1.0" encoding="UTF-8"?><Response></Response>', "text/xml")
_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")


def signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature for a POST to `url` with these form parameters."""
    data = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as called, and with the default port written or left out (Twilio signs what it was given)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if parts.port is None and default is not None and parts.hostname:
        variants.append(urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}")))
    elif parts.port == default and parts.hostname:
        variants.append(urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])))
    return variants


def _intent(body: str, opt_out_type: str) -> Literal["stop", "start", "other"]:
    kind = opt_out_type.strip().upper()
    if kind == "STOP":
        return "stop"
    if kind == "START":
        return "start"
    word = " ".join(body.split()).strip(" .!").upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return "other"


def _verified_form(request: WebhookRequest, url: str, host: HostSettings) -> dict[str, str]:
    """The form of a request Twilio signed for `url`; Refused when it did not (nothing in it is used then)."""
    token = twilio_settings(host).twilio_auth_token
    if not token:
        raise Refused(f"{PROVIDER}: CLINICBOT_TWILIO_AUTH_TOKEN is not set, so no inbound message can be checked",
                      provider=PROVIDER)
    if request.method != "POST":
        raise BadPayload(f"{PROVIDER}: webhooks are POSTed", provider=PROVIDER)
    if "x-twilio-webhooks-signature-settings" in request.headers:
        raise Refused(f"{PROVIDER}: the webhook is signed by a Webhooks Rule's shared key, which clinicbot does "
                      "not hold; sign it with the auth token", provider=PROVIDER)
    given = request.headers.get("x-twilio-signature", "")
    if not given or len(given) > 100:
        raise Refused(f"{PROVIDER}: the inbound message has no signature", provider=PROVIDER)
    try:
        text = request.body.decode("utf-8")
        params = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise Refused(f"{PROVIDER}: the inbound message is not a form", provider=PROVIDER) from None
    if not any(hmac.compare_digest(given.encode(), signature(token, variant, params).encode())
               for variant in _url_variants(url)):
        raise Refused(f"{PROVIDER}: the inbound message's signature is wrong", provider=PROVIDER)
    return dict(params)


def read_inbound(request: WebhookRequest, url: str, host: HostSettings) -> InboundSms:
    """Check the signature of one inbound message and read it; Refused when it is not Twilio's."""
    fields = _verified_form(request, url, host)
    sid, sender, to = fields.get("MessageSid", ""), fields.get("From", ""), fields.get("To", "")
    if not _SID.fullmatch(sid) or not _PHONE.fullmatch(sender):
        raise BadPayload(f"{PROVIDER}: the inbound message has no message SID or sender number", provider=PROVIDER)
    return InboundSms(message_id=sid, sender=sender, to=to,
                      intent=_intent(fields.get("Body", ""), fields.get("OptOutType", "")))


def read_status(request: WebhookRequest, url: str, host: HostSettings) -> SmsStatus:
    """Check and read a status callback: delivered, bounced (undelivered or failed), or not final yet."""
    fields = _verified_form(request, url, host)
    sid, status = fields.get("MessageSid", ""), fields.get("MessageStatus", "").lower()
    if not _SID.fullmatch(sid) or not status:
        raise BadPayload(f"{PROVIDER}: the status report has no message SID or status", provider=PROVIDER)
    code = fields.get("ErrorCode", "")
    if status == "delivered":
        return SmsStatus(sid, "delivered")
    if status in ("undelivered", "failed"):
        return SmsStatus(sid, "bounced", f"{PROVIDER}: {status}" + (f" (error {code})" if code.isdigit() else ""))
    return SmsStatus(sid, "pending")
