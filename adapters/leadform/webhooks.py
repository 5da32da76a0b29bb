"""The lead form endpoint: `POST /webhooks/leadform/<connection>`, signed by the clinic's website.

Signature: `X-Clinicbot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>`,
checked on the raw body before anything is decoded, in constant time, with `t` within five minutes
of the server's clock either way. The secret is the connection's, made at connect and stored
encrypted (a channel of the connection). A submission id already taken is refused (409), so a
captured form cannot be replayed into a second lead. Nothing is stored for a refused request.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from adapters.kit import signed_body
from adapters.kit.signed_body import SIGNATURE_HEADER, TOLERANCE
from sync.contract import BadPayload, Refused, Unavailable
from sync.contract.integration import ChannelDesk, WebhookAnswer, WebhookRequest
from sync.contract.leads import LeadInput

__all__ = ["SIGNATURE_HEADER", "TOLERANCE", "LeadForm", "LeadFormWebhooks", "sign", "verify"]

log = logging.getLogger("clinicbot.leadform")


def sign(body: bytes, secret: str, t: int) -> str:
    """The header value a form sends for `body` signed at unix time `t` (what the README shows)."""
    return signed_body.sign(body, secret, t)


def verify(body: bytes, header: str, secret: str, now: float, tolerance: int = TOLERANCE) -> str | None:
    """None when `header` signs `body` under `secret` within `tolerance` of `now`; else why not."""
    return signed_body.check(body, header, secret, now, tolerance)


def _times(value: object) -> object:
    return [value] if isinstance(value, str) else value


class LeadForm(BaseModel):
    """The form's JSON (documented in this folder's README)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    submission_id: str = Field(min_length=1, max_length=200)
    name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=320)
    phone: str = Field(default="", max_length=40)
    service: str = Field(default="", max_length=200)
    practitioner: str = Field(default="", max_length=200)
    location: str = Field(default="", max_length=200)
    preferred_times: Annotated[list[Annotated[str, Field(max_length=300)]], BeforeValidator(_times)] = \
        Field(default_factory=list, max_length=10)
    message: str = Field(default="", max_length=2000)

    def lead(self) -> LeadInput:
        return LeadInput(submission_id=self.submission_id, name=self.name, email=self.email, phone=self.phone,
                         service=self.service, practitioner=self.practitioner, location=self.location,
                         preferred_times=tuple(self.preferred_times), message=self.message)


def _error(status: int, why: str) -> WebhookAnswer:
    return WebhookAnswer(status, json.dumps({"error": why}), content_type="application/json")


class LeadFormWebhooks:
    """The signed-webhook capability of `leadform`: verify, read, and hand the lead to the core."""

    max_body = 64 * 1024

    def __init__(self, tolerance: int = TOLERANCE) -> None:
        self.tolerance = tolerance

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        if request.method != "POST":
            return _error(405, "POST only")
        channels = await desk.channels()
        if not channels:
            return _error(404, "unknown form")
        header = request.headers.get(SIGNATURE_HEADER, "")
        now = desk.now().timestamp()
        reasons = [verify(request.body, header, c.secret, now, self.tolerance) for c in channels]
        if None not in reasons:
            why = "stale" if "stale" in reasons else "unsigned" if "unsigned" in reasons else "forged"
            log.warning("lead form refused", extra={"connection": desk.connection_id, "why": why})
            return _error(401, {"stale": "the signature's timestamp is more than five minutes off",
                                "unsigned": f"sign the body: {SIGNATURE_HEADER}: t=<unix>,v1=<hex>",
                                "forged": "the signature does not match"}[why])
        if "json" not in request.headers.get("content-type", "application/json"):
            return _error(415, "send application/json")
        try:
            form = LeadForm.model_validate(json.loads(request.body))
        except (ValueError, ValidationError) as exc:
            detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]) \
                if isinstance(exc, ValidationError) else "the body is not JSON"
            return _error(400, detail)
        if not (form.email or form.phone):
            return _error(422, "a lead needs an email or a phone number")
        if not await desk.first_delivery(f"submission:{form.submission_id}"[:128]):
            return _error(409, "this submission was received already")
        try:
            outcome = await desk.intake_lead(form.lead())
        except BadPayload as exc:
            return _error(422, str(exc))
        except Refused as exc:
            return _error(404, str(exc))
        except Unavailable as exc:
            return _error(503, str(exc))
        if outcome.status == "duplicate":
            return _error(409, "this submission was received already")
        return WebhookAnswer(202, json.dumps({"lead": f"L-{outcome.lead_id}", "status": outcome.status}),
                             content_type="application/json")
