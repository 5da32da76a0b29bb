"""A client's reply to the practice's texting number: STOP opts them out, START back in; and the
platform's delivery reports, which turn a sent text that never arrived into a bounced one.

The integration checks the platform's signature before anything in the request is used; a forged or
unsigned request is answered 403 and changes nothing. Each message is acted on once (its platform id
is remembered in `sms_inbound`, in the same transaction as the change), so a replayed STOP sent after
the client's START does not opt them out again. The number is the server's, shared by its practices
(the platform itself blocks a number that said STOP for the whole sender), so the opt-out is recorded
for every practice, by the number's keyed hash only.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from sync.contract import BadPayload, Refused
from sync.contract.integration import WebhookAnswer, WebhookRequest
from sync.integrations import registry
from sync.notify.client_optouts import address_hash, normal_phone, opt_in_phone, record_opt_out
from sync.runtime.core import Core
from sync.store import audit
from sync.store.model import ClientNotice, Practice, SmsInbound

__all__ = ["handle_inbound", "handle_status", "inbound_limit"]

log = logging.getLogger("clinicbot.sms")


def inbound_limit(name: str) -> int | None:
    """The body limit of `name`'s inbound webhook, or None when it has none."""
    try:
        slot = registry.get(name).sms
    except Refused:
        return None
    return slot.max_body if slot is not None else None


async def handle_inbound(core: Core, name: str, request: WebhookRequest, url: str) -> WebhookAnswer:
    """Check and act on one inbound text for integration `name`; `url` is the full address it was sent to."""
    try:
        slot = registry.get(name).sms
    except Refused:
        slot = None
    if slot is None:
        return WebhookAnswer(404, "unknown webhook")
    try:
        inbound = slot.inbound(request, url, core.settings)
    except Refused as exc:
        log.warning("inbound text refused", extra={"integration": name, "why": str(exc)[:200]})
        return WebhookAnswer(403, "forbidden")
    except BadPayload as exc:
        log.warning("inbound text unreadable", extra={"integration": name, "why": str(exc)[:200]})
        return WebhookAnswer(400, "not a message")
    phone = normal_phone(inbound.sender)
    try:
        async with core.store.session() as s:
            seen = await s.scalar(select(SmsInbound.id).where(SmsInbound.provider == name,
                                                              SmsInbound.message_id == inbound.message_id))
            if seen is not None:
                return slot.inbound_answer
            s.add(SmsInbound(provider=name, message_id=inbound.message_id, intent=inbound.intent))
            await s.flush()
            if phone is None or inbound.intent == "other":
                return slot.inbound_answer
            hashed = address_hash(phone)
            for practice_id in (await s.scalars(select(Practice.id).order_by(Practice.id))).all():
                if inbound.intent == "stop":
                    await record_opt_out(s, practice_id, hashed, "sms", "client:sms")
                else:
                    await opt_in_phone(s, practice_id, hashed, "client:sms")
    except IntegrityError:
        # The same message acted on by another replica at the same moment: nothing more to do.
        return slot.inbound_answer
    log.info("inbound text", extra={"integration": name, "intent": inbound.intent})
    return slot.inbound_answer


async def handle_status(core: Core, name: str, request: WebhookRequest, url: str) -> WebhookAnswer:
    """Check one delivery report for integration `name`: a sent text not delivered becomes bounced (audited once)."""
    try:
        slot = registry.get(name).sms
    except Refused:
        slot = None
    if slot is None or slot.status is None:
        return WebhookAnswer(404, "unknown webhook")
    try:
        report = slot.status(request, url, core.settings)
    except Refused as exc:
        log.warning("delivery report refused", extra={"integration": name, "why": str(exc)[:200]})
        return WebhookAnswer(403, "forbidden")
    except BadPayload as exc:
        log.warning("delivery report unreadable", extra={"integration": name, "why": str(exc)[:200]})
        return WebhookAnswer(400, "not a report")
    if report.outcome != "bounced":
        return WebhookAnswer(204)
    async with core.store.session() as s:
        notice = await s.scalar(select(ClientNotice).where(ClientNotice.remote_id == report.message_id,
                                                           ClientNotice.channel == "sms").with_for_update())
        if notice is None or notice.status != "sent":
            return WebhookAnswer(204)  # not ours, or already bounced: a replay changes nothing
        notice.status, notice.last_error = "bounced", report.error[:500]
        await audit.record(s, actor="system:clients", action="client.notice_bounced", practice_id=notice.practice_id,
                           appointment_id=notice.appointment_id,
                           details={"kind": notice.kind, "channel": "sms", "outcome": "bounced",
                                    "error": report.error[:200]})
    return WebhookAnswer(204)
