"""Clients told of changes to their visits: queued with the change, sent by the leader's job.

When a visit is moved or cancelled (and, if the practice wants it, booked), the client gets an email
carrying the visit as an invitation (`METHOD:REQUEST` with a higher SEQUENCE, or `METHOD:CANCEL`),
so it updates itself in their own calendar. Rules:

- the message is queued inside the transaction of the change (a rolled-back change tells nobody),
  once per (visit, version, kind): a replayed event queues nothing more;
- clinicbot stays quiet where the booking's platform tells its clients itself (its integration's
  `notifies_clients`, overridable per connection with `notifies_clients` in its config);
- a client who opted out (the link in every message, or an admin) gets nothing, checked again at
  sending time;
- nothing leaves during the practice's quiet hours for clients (`client_quiet` "21:00-08:00"): it
  waits for their end;
- a deferral is retried with backoff, a refusal is kept as failed with the server's words.

The practice chooses with its settings: `client_notices` ("on", the default, or "off"),
`client_notices_new` (also for new bookings), `client_language` ("en" or "es").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import ProviderError, Refused
from sync.contract.messages import ClientEmail, Invitation, MailSender
from sync.integrations import registry
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent
from sync.store import audit
from sync.store.crypto import current_box
from sync.store.model import (
    Appointment,
    Calendar,
    ClientNotice,
    ClientOptOut,
    Connection,
    Practice,
    Practitioner,
)

__all__ = [
    "SEND_EVERY_SECONDS",
    "SUBSCRIBER_NAME",
    "address_hash",
    "opt_out",
    "opt_out_by_token",
    "register",
    "send_due",
    "unsubscribe_token",
]

log = logging.getLogger("clinicbot.clients")

SUBSCRIBER_NAME = "client_notices"
SEND_EVERY_SECONDS = 60
MAX_ATTEMPTS = 8
_KINDS = {"rescheduled": "moved", "cancelled": "cancelled", "created": "booked"}

_TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "moved_subject": "Your visit with {practitioner} has moved to {when}",
        "moved": "Hello {client},\n\nyour {service}visit with {practitioner} at {practice} has moved.\n"
                 "New time: {when} ({zone}).{location}\n\nThe attached invitation updates it in your calendar.",
        "cancelled_subject": "Your visit with {practitioner} on {when} is cancelled",
        "cancelled": "Hello {client},\n\nyour {service}visit with {practitioner} at {practice} on {when} ({zone}) "
                     "is cancelled.\n\nThe attached invitation removes it from your calendar.",
        "booked_subject": "Your visit with {practitioner} on {when}",
        "booked": "Hello {client},\n\nyour {service}visit with {practitioner} at {practice} is booked for "
                  "{when} ({zone}).{location}\n\nThe attached invitation adds it to your calendar.",
        "location": "\nWhere: {location}",
        "proposed_subject": "A time for your visit with {practitioner}: {when}",
        "proposed": "Hello {client},\n\nthank you for asking {practice} for a {service}visit. We can see you on "
                    "{when} ({zone}) with {practitioner}.{location}\n\nTo book it, confirm here:\n{confirm}\n\n"
                    "If the time does not suit you, reply to this email and we will find another.",
        "footer": "\n\n{practice}\nNo more messages about your visits: {unsubscribe}",
        "client": "there",
    },
    "es": {
        "moved_subject": "Su cita con {practitioner} ha cambiado al {when}",
        "moved": "Hola {client}:\n\nsu cita {service}con {practitioner} en {practice} ha cambiado.\n"
                 "Nueva hora: {when} ({zone}).{location}\n\nLa invitación adjunta la actualiza en su calendario.",
        "cancelled_subject": "Su cita con {practitioner} del {when} está cancelada",
        "cancelled": "Hola {client}:\n\nsu cita {service}con {practitioner} en {practice} del {when} ({zone}) "
                     "está cancelada.\n\nLa invitación adjunta la quita de su calendario.",
        "booked_subject": "Su cita con {practitioner} el {when}",
        "booked": "Hola {client}:\n\nsu cita {service}con {practitioner} en {practice} está reservada para el "
                  "{when} ({zone}).{location}\n\nLa invitación adjunta la añade a su calendario.",
        "location": "\nLugar: {location}",
        "proposed_subject": "Una hora para su cita con {practitioner}: {when}",
        "proposed": "Hola {client}:\n\ngracias por pedir una cita {service}en {practice}. Podemos atenderle el "
                    "{when} ({zone}) con {practitioner}.{location}\n\nPara reservarla, confirme aquí:\n{confirm}\n\n"
                    "Si la hora no le conviene, responda a este correo y buscaremos otra.",
        "footer": "\n\n{practice}\nPara no recibir más mensajes sobre sus citas: {unsubscribe}",
        "client": "",
    },
}


# --- opt-out ----------------------------------------------------------------------------------------


def address_hash(address: str) -> str:
    """A keyed hash of an email address (case-insensitive): what the opt-out list and links hold."""
    key = current_box().derive("client-address")
    return hmac.new(key, address.strip().lower().encode(), hashlib.sha256).hexdigest()


def unsubscribe_token(practice_id: int, address: str) -> str:
    """A link token naming the practice and the address's hash (no address in the URL), signed."""
    body = base64.urlsafe_b64encode(json.dumps([practice_id, address_hash(address)]).encode()).decode().rstrip("=")
    mac = hmac.new(current_box().derive("client-unsubscribe"), body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def _read_token(token: str) -> tuple[int, str] | None:
    if len(token) > 300 or token.count(".") != 1:
        return None
    body, mac = token.split(".")
    want = hmac.new(current_box().derive("client-unsubscribe"), body.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(mac, want):
        return None
    try:
        practice_id, hashed = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, TypeError):
        return None
    if not isinstance(practice_id, int) or not isinstance(hashed, str) or len(hashed) != 64:
        return None
    return practice_id, hashed


async def _record_opt_out(session: AsyncSession, practice_id: int, hashed: str, source: str, actor: str) -> bool:
    found = await session.scalar(select(ClientOptOut).where(ClientOptOut.practice_id == practice_id,
                                                            ClientOptOut.address_hash == hashed))
    if found is not None:
        return False
    session.add(ClientOptOut(practice_id=practice_id, address_hash=hashed, source=source))
    await audit.record(session, actor=actor, action="client.opt_out", practice_id=practice_id,
                       details={"source": source})
    return True


async def opt_out_by_token(core: Core, token: str) -> str | None:
    """Record the opt-out a link names; the practice's name, or None for a link that is not ours."""
    read = _read_token(token)
    if read is None:
        return None
    practice_id, hashed = read
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        if practice is None:
            return None
        await _record_opt_out(s, practice_id, hashed, "link", "client:link")
        return practice.name


async def opt_out(core: Core, practice_id: int, address: str, *, actor: str, source: str = "cli") -> bool:
    """An admin records that a client wants no messages; False when they had already opted out."""
    async with core.store.session() as s:
        return await _record_opt_out(s, practice_id, address_hash(address), source, actor)


async def _opted_out(session: AsyncSession, practice_id: int, address: str) -> bool:
    found = await session.scalar(select(ClientOptOut.id).where(
        ClientOptOut.practice_id == practice_id, ClientOptOut.address_hash == address_hash(address)))
    return found is not None


# --- queueing -------------------------------------------------------------------------------------


def register(core: Core) -> None:
    """Hook the client-notice subscriber onto core.bus (once)."""
    if SUBSCRIBER_NAME in core.bus.names:
        return

    async def subscriber(session: AsyncSession, event: AppointmentEvent) -> None:
        await on_event(core, session, event)

    core.bus.subscribe(SUBSCRIBER_NAME, subscriber)


async def _platform_tells_clients(session: AsyncSession, appt: Appointment) -> bool:
    if appt.source_calendar_id is None:
        return False
    found = (await session.execute(
        select(Connection.provider, Connection.config).join(Calendar, Calendar.connection_id == Connection.id)
        .where(Calendar.id == appt.source_calendar_id))).first()
    if found is None:
        return False
    provider, config = found
    override = (config or {}).get("notifies_clients")
    if isinstance(override, bool):
        return override
    try:
        return registry.get(provider).notifies_clients
    except ProviderError:
        return False


def _quiet_until(settings: dict[str, Any], now: datetime, zone: ZoneInfo) -> datetime:
    """`now`, or the end of the practice's quiet hours for clients when `now` falls inside them."""
    raw = str(settings.get("client_quiet") or "")
    try:
        start_text, end_text = raw.split("-", 1)
        start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    except ValueError:
        return now
    local = now.astimezone(zone)
    t = local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return now
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone)


async def on_event(core: Core, session: AsyncSession, event: AppointmentEvent) -> None:
    """Queue the client's message for one change, inside the change's transaction."""
    kind = _KINDS.get(event.kind)
    if kind is None or not _mail_configured(core):
        return  # no mail server set up: nothing is queued that could never be sent
    practice = await session.get(Practice, event.practice_id)
    appt = await session.get(Appointment, event.appointment_id)
    if practice is None or appt is None or not appt.client_email:
        return
    settings = dict(practice.settings or {})
    if settings.get("client_notices", "on") == "off" or (kind == "booked" and not settings.get("client_notices_new")):
        return
    if await _platform_tells_clients(session, appt):
        return
    key = f"{appt.id}:{event.version}:{kind}:email"
    if await session.scalar(select(ClientNotice.id).where(ClientNotice.key == key)) is not None:
        return
    if await _opted_out(session, practice.id, appt.client_email):
        return
    practitioner = await session.get(Practitioner, appt.practitioner_id) if appt.practitioner_id else None
    zone = ZoneInfo(practice.timezone)
    payload = {
        "start": appt.start.isoformat(), "end": appt.end.isoformat(), "zone": practice.timezone,
        "practitioner": practitioner.name if practitioner else practice.name, "service": appt.service or "",
        "location": appt.location_text or "", "practice": practice.name, "sequence": event.version,
        "uid": f"clinicbot-{practice.id}-{appt.id}", "language": settings.get("client_language", "en"),
    }
    session.add(ClientNotice(
        practice_id=practice.id, appointment_id=appt.id, key=key, kind=kind, channel="email",
        recipient=appt.client_email, recipient_name=appt.client_name, payload=payload,
        next_attempt_at=_quiet_until(settings, core.clock(), zone),
    ))


# --- sending --------------------------------------------------------------------------------------


def _mail_configured(core: Core) -> bool:
    return any(i.mail is not None and i.is_configured(core.settings) for i in registry.integrations())


def _sender(core: Core) -> MailSender | None:
    for integration in registry.integrations():
        if integration.mail is not None:
            sender = integration.mail.open(core.settings)
            if sender is not None:
                return sender
    return None


def _email(core: Core, notice: ClientNotice) -> ClientEmail:
    p = dict(notice.payload or {})
    words = _TEMPLATES.get(str(p.get("language")), _TEMPLATES["en"])
    zone = ZoneInfo(str(p["zone"]))
    start, end = datetime.fromisoformat(str(p["start"])), datetime.fromisoformat(str(p["end"]))
    when = f"{start.astimezone(zone):%a %d %b %Y, %H:%M}"
    client = (notice.recipient_name or "").split(" ")[0] or words["client"]
    unsubscribe = f"{core.settings.base_url()}/unsubscribe?t={unsubscribe_token(notice.practice_id, notice.recipient)}"
    fields = {
        "client": client, "practitioner": p["practitioner"], "practice": p["practice"], "when": when,
        "zone": p["zone"], "service": f"{p['service']} " if p.get("service") else "",
        "location": words["location"].format(location=p["location"]) if p.get("location") else "",
        "unsubscribe": unsubscribe, "confirm": str(p.get("confirm_url") or ""),
    }
    text = words[notice.kind].format(**fields) + words["footer"].format(**fields)
    if notice.kind == "proposed":
        # A proposal is not booked yet: no invitation until the client confirms (then the booking's own
        # notice, when the practice sends those, carries it).
        return ClientEmail(key=notice.key, to=notice.recipient, to_name=notice.recipient_name or "",
                           subject=words["proposed_subject"].format(**fields), text=text, unsubscribe_url=unsubscribe)
    method: Literal["REQUEST", "CANCEL"] = "CANCEL" if notice.kind == "cancelled" else "REQUEST"
    invitation = Invitation(
        uid=str(p["uid"]), sequence=int(p["sequence"]), method=method, start=start, end=end, tzid=str(p["zone"]),
        summary=f"{p['service'] or 'Visit'} with {p['practitioner']}", location=str(p.get("location") or ""),
        organizer_email=_from_address(core), organizer_name=str(p["practice"]),
        attendee_email=notice.recipient, attendee_name=notice.recipient_name or "",
    )
    return ClientEmail(key=notice.key, to=notice.recipient, to_name=notice.recipient_name or "",
                       subject=words[f"{notice.kind}_subject"].format(**fields), text=text,
                       invitation=invitation, unsubscribe_url=unsubscribe)


def _from_address(core: Core) -> str:
    for integration in registry.integrations():
        if integration.mail is not None and integration.settings is not None:
            own = core.settings.section(integration.settings)
            address = getattr(own, "smtp_from", None)
            if isinstance(address, str) and "@" in address:
                return address.split("<")[-1].strip("> ")
    return "clinic@clinicbot.invalid"


@dataclass
class SendStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0


async def send_due(core: Core, *, limit: int = 100) -> SendStats:
    """Send the client messages that are due (the leader's periodic job); one failure never stops the rest."""
    stats = SendStats()
    now = core.clock()
    async with core.store.session() as s:
        due = (await s.scalars(select(ClientNotice).where(ClientNotice.status == "pending",
                                                          ClientNotice.next_attempt_at <= now)
                               .order_by(ClientNotice.next_attempt_at, ClientNotice.id).limit(limit))).all()
        ids = [n.id for n in due]
    if not ids:
        return stats
    sender = _sender(core)
    if sender is None:
        log.warning("client messages are waiting but no mail server is set up (CLINICBOT_SMTP_HOST)",
                    extra={"waiting": len(ids)})
        return stats
    for notice_id in ids:
        async with core.store.session() as s:
            notice = await s.get(ClientNotice, notice_id)
            if notice is None or notice.status != "pending":
                continue
            if await _opted_out(s, notice.practice_id, notice.recipient):
                notice.status, notice.last_error = "skipped", "opted out"
                stats.skipped += 1
                continue
            email = _email(core, notice)
            notice.attempts += 1
            try:
                await sender.send(email)
            except Refused as exc:
                notice.status, notice.last_error = "failed", str(exc)[:500]
                stats.failed += 1
                await audit.record(s, actor="system:clients", action="client.notice_failed",
                                   practice_id=notice.practice_id, appointment_id=notice.appointment_id,
                                   details={"kind": notice.kind, "error": str(exc)[:200]})
                continue
            except ProviderError as exc:
                notice.last_error = str(exc)[:500]
                if notice.attempts >= MAX_ATTEMPTS:
                    notice.status = "failed"
                    stats.failed += 1
                else:
                    notice.next_attempt_at = core.clock() + timedelta(seconds=min(3600, 30 * 2 ** notice.attempts))
                    stats.retried += 1
                continue
            notice.status, notice.sent_at, notice.last_error = "sent", core.clock(), None
            stats.sent += 1
            await audit.record(s, actor="system:clients", action="client.notified", practice_id=notice.practice_id,
                               appointment_id=notice.appointment_id,
                               details={"kind": notice.kind, "channel": notice.channel})
    return stats


async def send_job(core: Core) -> None:
    """The periodic job's entry point."""
    await send_due(core)
