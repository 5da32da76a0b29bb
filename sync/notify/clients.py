"""Clients told of changes to their visits: queued with the change, sent by the leader's job.

When a visit is moved or cancelled (and, if the practice wants it, booked), the client gets an email
carrying the visit as an invitation (`METHOD:REQUEST` with a higher SEQUENCE, or `METHOD:CANCEL`),
so it updates itself in their own calendar, and/or a short text (Twilio), as the practice chose
(sync.services.client_notices). Rules:

- the message is queued inside the transaction of the change (a rolled-back change tells nobody),
  once per (visit, version, kind, channel): a replayed event queues nothing more;
- clinicbot stays quiet where the booking's platform tells its clients itself (its integration's
  `notifies_clients`, overridable per connection with `notifies_clients` in its config);
- a client who opted out (the link, STOP, or an admin) gets nothing, checked again at sending time;
- nothing leaves during the practice's quiet hours for clients (`client_quiet` "21:00-08:00"): it
  waits for their end;
- no service unless the practice turned details on, and never the notes;
- sending claims the message first (a conditional update, committed), so two replicas never both
  send it; a claim left by a crash is taken up again after its lease. A text is only ever resent
  after Twilio's own list says it does not have it (Twilio has no idempotency key); an email is
  resent with the same Message-ID;
- a deferral is retried with backoff, a refusal is kept as failed with the server's words; each
  outcome is audited with its channel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import ProviderError, RateLimited, RecipientOptedOut, Refused
from sync.contract.messages import ClientEmail, ClientSms, Invitation, MailSender, SmsSender
from sync.engine.recurrence import FUTURE, recurrence_key
from sync.engine.series import is_series, visit_at
from sync.engine.snapshots import appointment_rows
from sync.integrations import registry
from sync.notify.client_optouts import (
    address_hash,
    normal_phone,
    opt_out,
    opt_out_by_token,
    opted_out,
    record_opt_out,
    unsubscribe_token,
)
from sync.notify.client_texts import EMAIL_WORDS, fields, sms_text
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent, sync_memo
from sync.services.client_notices import (
    ClientNoticeSettings,
    configured_channels,
    notice_settings,
    quiet_until,
    render_template,
)
from sync.store import audit
from sync.store.model import (
    ACTIVITY,
    Appointment,
    Calendar,
    ClientNotice,
    Connection,
    Lead,
    Practice,
    Practitioner,
)

__all__ = [
    "LEASE",
    "SEND_EVERY_SECONDS",
    "SUBSCRIBER_NAME",
    "SendStats",
    "address_hash",
    "configured_channels",
    "on_event",
    "on_events",
    "opt_out",
    "opt_out_by_token",
    "queue_notice",
    "register",
    "send_due",
    "unsubscribe_token",
]

log = logging.getLogger("clinicbot.clients")

SUBSCRIBER_NAME = "client_notices"
SEND_EVERY_SECONDS = 60
MAX_ATTEMPTS = 8
#: How long a claimed message may stay "sending" before another run takes it up (a crash mid-send).
LEASE = timedelta(minutes=5)
_KINDS = {"rescheduled": "moved", "cancelled": "cancelled", "created": "booked"}


def register(core: Core) -> None:
    """Hook the client-notice subscriber onto core.bus (once)."""
    if SUBSCRIBER_NAME in core.bus.names:
        return

    async def subscriber(session: AsyncSession, events: Sequence[AppointmentEvent]) -> None:
        await on_events(core, session, events)

    core.bus.subscribe_batch(SUBSCRIBER_NAME, subscriber)


async def platform_tells_clients(session: AsyncSession, appt: Appointment) -> bool:
    """The booking's platform tells its clients itself (clinicbot stays quiet)."""
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


async def on_event(core: Core, session: AsyncSession, event: AppointmentEvent) -> None:
    """Queue the client's messages for one change, inside the change's transaction."""
    await on_events(core, session, (event,))


async def on_events(core: Core, session: AsyncSession, events: Sequence[AppointmentEvent]) -> None:
    """Queue the clients' messages for a batch of changes, inside their transaction.

    Each practice's settings are read once per batch, and a practice with client notices off (or
    with booking notices off, for an import) costs nothing more: no appointment is read for it."""
    settings: dict[int, tuple[Practice, ClientNoticeSettings] | None] = sync_memo(session).setdefault(
        "clients.settings", {})
    wanted_events: list[tuple[AppointmentEvent, str, Practice, ClientNoticeSettings]] = []
    for event in events:
        kind = _KINDS.get(event.kind)
        if kind is None:
            continue
        if event.practice_id not in settings:
            practice = await session.get(Practice, event.practice_id)
            wanted = notice_settings(practice.settings, practice.name) if practice is not None else None
            settings[event.practice_id] = (practice, wanted) if practice and wanted and wanted.enabled else None
        found = settings[event.practice_id]
        if found is None or (kind == "booked" and not found[1].new):
            continue
        wanted_events.append((event, kind, *found))
    if not wanted_events:
        return
    appts = await appointment_rows(session, [event.appointment_id for event, *_ in wanted_events])
    available: frozenset[str] | None = None
    for event, kind, practice, wanted in wanted_events:
        appt = appts.get(event.appointment_id)
        if appt is None or appt.kind == ACTIVITY:
            continue  # a tracked work event's attendees are colleagues, not clients
        if not ((wanted.email and appt.client_email) or (wanted.sms and appt.client_phone)):
            continue  # no way to reach this client: no need to know what this server can send on
        if available is None:
            available = configured_channels(core)
        await queue_notice(core, session, practice, appt, wanted, kind=kind,
                           key=f"{appt.id}:{event.version}:{kind}", sequence=event.version, available=available)


async def queue_notice(core: Core, session: AsyncSession, practice: Practice, appt: Appointment,
                       wanted: ClientNoticeSettings, *, kind: str, key: str, sequence: int,
                       available: frozenset[str]) -> int:
    """Queue one message per channel the practice uses and the client can be reached on; how many were queued.

    Nothing is queued that could never be sent (`available`: no mail server, no Twilio), twice (the key), to a
    client who opted out, or where the booking's platform tells its clients itself.
    """
    channels: list[tuple[str, str]] = []
    if wanted.email and appt.client_email and "email" in available:
        channels.append(("email", appt.client_email))
    if wanted.sms and appt.client_phone and "sms" in available:
        channels.append(("sms", appt.client_phone))
    if not channels or await platform_tells_clients(session, appt):
        return 0
    practitioner = await session.get(Practitioner, appt.practitioner_id) if appt.practitioner_id else None
    zone = ZoneInfo(practice.timezone)
    payload = {
        "start": appt.start.isoformat(), "end": appt.end.isoformat(), "zone": practice.timezone,
        "practitioner": practitioner.name if practitioner else practice.name,
        "service": (appt.service or "") if wanted.details else "",
        "location": appt.location_text or "", "practice": practice.name, "sequence": sequence,
        "uid": f"clinicbot-{practice.id}-{appt.id}", "language": wanted.language,
        "template": wanted.templates.get(kind, ""),
    }
    if is_series(appt):
        # One visit of a series (a reminder): an invitation with the series' UID would turn the whole
        # series into this one visit in the client's calendar, so the message goes without one.
        payload["occurrence"] = True
    due = quiet_until(wanted.quiet, core.clock(), zone)
    queued = 0
    for channel, raw in channels:
        full_key = f"{key}:{channel}"
        if await session.scalar(select(ClientNotice.id).where(ClientNotice.key == full_key)) is not None:
            continue
        recipient = raw if channel == "email" else (normal_phone(raw, wanted.phone_prefix) or "")
        if recipient and await opted_out(session, practice.id, recipient):
            continue
        notice = ClientNotice(practice_id=practice.id, appointment_id=appt.id, key=full_key, kind=kind,
                              channel=channel, recipient=recipient or raw, recipient_name=appt.client_name,
                              payload=payload, next_attempt_at=due)
        if not recipient:
            # Visible in `clients status`, never sent to a guess of what the number means.
            notice.status, notice.last_error = "failed", ("the client's phone number has no country code (+44...); "
                                                          "set one with `client-notices prefix +44`")
            await audit.record(session, actor="system:clients", action="client.notice_failed",
                               practice_id=practice.id, appointment_id=appt.id,
                               details={"kind": kind, "channel": channel, "outcome": "failed",
                                        "error": notice.last_error})
        session.add(notice)
        queued += 1
    return queued


# --- sending --------------------------------------------------------------------------------------


def _mail_sender(core: Core) -> MailSender | None:
    for integration in registry.integrations():
        if integration.mail is not None:
            sender = integration.mail.open(core.settings)
            if sender is not None:
                return sender
    return None


def _sms_sender(core: Core) -> tuple[SmsSender, str] | None:
    """The texting integration's sender, and where its delivery reports come back (None: not set up there)."""
    for integration in registry.integrations():
        if integration.sms is not None:
            sender = integration.sms.open(core.settings)
            if sender is not None:
                # Reports need an address the platform reaches: only with CLINICBOT_PUBLIC_URL set.
                reports = f"{core.settings.base_url()}/sms/{integration.name}/status" \
                    if integration.sms.status is not None and core.settings.public_url else ""
                return sender, reports
    return None


def _from_address(core: Core) -> str:
    for integration in registry.integrations():
        if integration.mail is not None and integration.settings is not None:
            own = core.settings.section(integration.settings)
            address = getattr(own, "smtp_from", None)
            if isinstance(address, str) and "@" in address:
                return address.split("<")[-1].strip("> ")
    return "clinic@clinicbot.invalid"


def _email(core: Core, notice: ClientNotice) -> ClientEmail:
    p = dict(notice.payload or {})
    values = fields(p, notice.recipient_name)
    words = EMAIL_WORDS[values["language"]]
    start, end = datetime.fromisoformat(str(p["start"])), datetime.fromisoformat(str(p["end"]))
    unsubscribe = f"{core.settings.base_url()}/unsubscribe?t={unsubscribe_token(notice.practice_id, notice.recipient)}"
    location = words["location"].format(location=values["location"]) if values["location"] else ""
    filled = {**values, "location_": location, "unsubscribe": unsubscribe, "confirm": str(p.get("confirm_url") or "")}
    template = str(p.get("template") or "")
    main = render_template(template, values) if template else words[notice.kind].format(**filled)
    text = main + words["footer"].format(**filled)
    if notice.kind == "proposed" or p.get("occurrence"):
        # A proposal is not booked yet: no invitation until the client confirms (then the booking's own
        # notice, when the practice sends those, carries it). One visit of a series has none either.
        return ClientEmail(key=notice.key, to=notice.recipient, to_name=notice.recipient_name or "",
                           subject=words[f"{notice.kind}_subject"].format(**filled), text=text,
                           unsubscribe_url=unsubscribe)
    method: Literal["REQUEST", "CANCEL"] = "CANCEL" if notice.kind == "cancelled" else "REQUEST"
    invitation = Invitation(
        uid=str(p["uid"]), sequence=int(p["sequence"]), method=method, start=start, end=end, tzid=str(p["zone"]),
        summary=f"{p.get('service') or 'Visit'} with {p['practitioner']}", location=str(p.get("location") or ""),
        organizer_email=_from_address(core), organizer_name=str(p["practice"]),
        attendee_email=notice.recipient, attendee_name=notice.recipient_name or "",
    )
    return ClientEmail(key=notice.key, to=notice.recipient, to_name=notice.recipient_name or "",
                       subject=words[f"{notice.kind}_subject"].format(**filled), text=text,
                       invitation=invitation, unsubscribe_url=unsubscribe)


def _sms(notice: ClientNotice, reports: str) -> ClientSms:
    p = dict(notice.payload or {})
    return ClientSms(key=notice.key, to=notice.recipient, text=sms_text(notice.kind, p, str(p.get("template") or "")),
                     status_url=reports or None)


@dataclass
class SendStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass
class _Senders:
    core: Core
    mail: MailSender | None = None
    sms: SmsSender | None = None
    reports: str = ""
    opened: bool = False

    def get(self, channel: str) -> MailSender | SmsSender | None:
        if not self.opened:
            self.mail, self.opened = _mail_sender(self.core), True
            texting = _sms_sender(self.core)
            if texting is not None:
                self.sms, self.reports = texting
        return self.mail if channel == "email" else self.sms if channel == "sms" else None


async def _stale_reason(session: AsyncSession, notice: ClientNotice, now: datetime) -> str | None:
    """Why a message should no longer go (opted out; a reminder whose visit moved, was cancelled or passed)."""
    if await opted_out(session, notice.practice_id, notice.recipient):
        return "opted out"
    if notice.kind == "reminder":
        appt = await session.get(Appointment, notice.appointment_id) if notice.appointment_id else None
        start = datetime.fromisoformat(str((notice.payload or {}).get("start")))
        if appt is not None and is_series(appt):  # one visit of a series: the series must still have it
            if appt.source_uid and await session.scalar(select(Appointment.id).where(
                    Appointment.source_calendar_id == appt.source_calendar_id,
                    Appointment.source_uid == appt.source_uid,
                    Appointment.recurrence_key.in_((recurrence_key(start), recurrence_key(start) + FUTURE)))):
                return "the visit was changed on its own after the reminder was queued (its own reminder goes)"
            appt = visit_at(appt, start)
        if appt is None or appt.status != "confirmed" or appt.start != start:
            return "the visit changed after the reminder was queued"
        if start <= now:
            return "the visit began before the quiet hours ended"
    if notice.kind == "proposed":
        # `lead:<id>:<nonce>:proposed:email`: held back by quiet hours, a proposal may have been replaced
        # (another slot), booked or lost meanwhile; only the lead's live proposal goes.
        parts = notice.key.split(":")
        lead = await session.get(Lead, int(parts[1])) if len(parts) > 2 and parts[1].isdigit() else None
        if lead is None or lead.status != "proposed" or lead.proposal_nonce != parts[2]:
            return "the proposal was replaced, booked or closed before it could go"
        if datetime.fromisoformat(str((notice.payload or {}).get("start"))) <= now:
            return "the proposed time passed before the quiet hours ended"
    return None


async def _claim(session: AsyncSession, notice_id: int, now: datetime) -> bool:
    """Take a pending message for this run (one replica wins); committed with the caller's transaction."""
    claimed = await session.execute(
        update(ClientNotice)
        .where(ClientNotice.id == notice_id, ClientNotice.status == "pending", ClientNotice.next_attempt_at <= now)
        .values(status="sending", attempts=ClientNotice.attempts + 1, next_attempt_at=now + LEASE)
        .execution_options(synchronize_session=False))
    return bool(getattr(claimed, "rowcount", 0))


async def _record(core: Core, notice_id: int, stats: SendStats, outcome: str, error: str | None = None,
                  retry: bool = False, wait: float | None = None, remote_id: str | None = None,
                  opted_out_there: bool = False) -> None:
    """Write one attempt's outcome and its audit entry (with the channel).

    `opted_out_there`: the platform refused because the client opted out with it (a STOP sent to
    Twilio before clinicbot heard of it); the opt-out is recorded in the same transaction, as a text
    STOP is, so a START lifts it and nothing more is queued for that number.
    """
    async with core.store.session() as s:
        notice = await s.get(ClientNotice, notice_id)
        if notice is None:
            return
        if opted_out_there:
            await record_opt_out(s, notice.practice_id, address_hash(notice.recipient), notice.channel,
                                 f"system:{notice.channel}")
        details: dict[str, Any] = {"kind": notice.kind, "channel": notice.channel, "outcome": outcome}
        if outcome == "sent":
            notice.status, notice.sent_at, notice.last_error = "sent", core.clock(), None
            notice.remote_id = remote_id
            stats.sent += 1
            await audit.record(s, actor="system:clients", action="client.notified", practice_id=notice.practice_id,
                               appointment_id=notice.appointment_id, details=details)
            return
        notice.last_error = (error or "")[:500]
        if retry and notice.attempts < MAX_ATTEMPTS:
            notice.status = "pending"
            backoff = min(3600, 30 * 2 ** notice.attempts)
            notice.next_attempt_at = core.clock() + timedelta(seconds=max(backoff, min(wait or 0, 86400)))
            stats.retried += 1
            return
        notice.status = "failed"
        stats.failed += 1
        await audit.record(s, actor="system:clients", action="client.notice_failed", practice_id=notice.practice_id,
                           appointment_id=notice.appointment_id, details={**details, "error": (error or "")[:200]})


async def _take_up_stale(core: Core, now: datetime) -> None:
    """Claims whose lease ran out (the sender crashed mid-send) go back to pending; attempts say it was tried."""
    async with core.store.session() as s:
        await s.execute(update(ClientNotice)
                        .where(ClientNotice.status == "sending", ClientNotice.next_attempt_at <= now)
                        .values(status="pending").execution_options(synchronize_session=False))


async def send_due(core: Core, *, limit: int = 100) -> SendStats:
    """Send the client messages that are due (the leader's periodic job); one failure never stops the rest."""
    stats = SendStats()
    now = core.clock()
    await _take_up_stale(core, now)
    async with core.store.session() as s:
        ids = list((await s.scalars(select(ClientNotice.id).where(ClientNotice.status == "pending",
                                                                  ClientNotice.next_attempt_at <= now)
                                    .order_by(ClientNotice.next_attempt_at, ClientNotice.id).limit(limit))).all())
    senders = _Senders(core)
    try:
        await _send_each(core, ids, senders, stats, now)
    finally:
        if senders.sms is not None:
            await senders.sms.aclose()
    return stats


async def _send_each(core: Core, ids: list[int], senders: _Senders, stats: SendStats, now: datetime) -> None:
    missing: set[str] = set()
    for notice_id in ids:
        async with core.store.session() as s:
            notice = await s.get(ClientNotice, notice_id)
            if notice is None or notice.status != "pending":
                continue
            sender = senders.get(notice.channel)
            if sender is None:
                missing.add(notice.channel)
                continue
            reason = await _stale_reason(s, notice, now)
            if reason is not None:
                notice.status, notice.last_error = "skipped", reason
                stats.skipped += 1
                continue
            tried_before, channel = notice.attempts > 0, notice.channel
            since = notice.created_at
            message: ClientEmail | ClientSms = _email(core, notice) if notice.channel == "email" \
                else _sms(notice, senders.reports)
            if not await _claim(s, notice_id, now):
                continue  # another replica took it meanwhile
        # Claimed and committed: the network call runs outside any transaction.
        try:
            if isinstance(message, ClientSms):
                sms_sender = cast(SmsSender, sender)
                earlier = await sms_sender.find(message, since) if tried_before else None
                if earlier is not None:
                    await _record(core, notice_id, stats, "sent", remote_id=earlier)  # the earlier attempt got there
                    continue
                remote_id: str | None = await sms_sender.send(message)
            else:
                await cast(MailSender, sender).send(message)
                remote_id = None
        except RecipientOptedOut as exc:
            await _record(core, notice_id, stats, "failed", str(exc), opted_out_there=True)
            continue
        except Refused as exc:
            await _record(core, notice_id, stats, "failed", str(exc))
            continue
        except RateLimited as exc:  # the platform said how long to wait: never sooner
            await _record(core, notice_id, stats, "failed", str(exc), retry=True, wait=exc.retry_after)
            continue
        except ProviderError as exc:
            await _record(core, notice_id, stats, "failed", str(exc), retry=True)
            continue
        except Exception as exc:  # one broken message never stops the others
            log.exception("client message failed unexpectedly", extra={"channel": channel})
            await _record(core, notice_id, stats, "failed", f"unexpected: {type(exc).__name__}", retry=True)
            continue
        await _record(core, notice_id, stats, "sent", remote_id=remote_id)
    for lacking in missing:
        log.warning("client messages are waiting but nothing is set up to send them",
                    extra={"channel": lacking, "hint": "CLINICBOT_SMTP_HOST" if lacking == "email"
                           else "CLINICBOT_TWILIO_ACCOUNT_SID"})

