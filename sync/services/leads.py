"""Leads: prospective clients from forms, turned into proposed slots and booked visits.

- `intake_lead` stores a verified form submission (sync.contract.leads.LeadInput): the person
  encrypted, the service, a preferred practitioner and/or location matched to the practice's own,
  and the preferred times read with the chat's time grammar (sync.services.lead_times), anything
  not understood kept as text. A submission taken before changes nothing; the same email or phone
  within MERGE_DAYS merges into that person's open lead.
- `lead_card` is what staff see: the lead and the next free slots that fit the preference, across
  the matching practitioners (sync.services.availability).
- `propose` queues an email to the client (the client-notice ledger, sent by sync.notify.clients)
  with a signed confirm link; `confirm_by_token` (the link's page) and `book` (staff, directly)
  create the visit as clinicbot's own appointment, mirrored like any other; `mark_lost` closes it.
- Every step is audited: lead.new, lead.merged, lead.proposed, lead.booked, lead.lost. Audit
  details carry ids and states, never the person's name or contact.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract.leads import LEAD_FIELD_LIMIT, LeadInput
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent
from sync.services import appointments, availability
from sync.services.client_notices import configured_channels, notice_settings, quiet_until
from sync.services.errors import Conflict, Invalid, NotFound
from sync.services.lead_times import TimePreference, parse_preferences
from sync.services.locations import find_location
from sync.services.practices import find_practitioner
from sync.services.slots import DEFAULT_MINUTES
from sync.store import audit
from sync.store.crypto import current_box
from sync.store.database import hold_write_lock
from sync.store.model import (
    Appointment,
    ClientNotice,
    Location,
    Practice,
    Practitioner,
    utcnow,
)
from sync.store.model import Connection as _Conn
from sync.store.model import Lead as LeadRow
from sync.store.model import LeadSubmission as SubmissionRow

__all__ = [
    "LEAD_STATES",
    "MERGE_DAYS",
    "Lead",
    "LeadCard",
    "LeadSlot",
    "Proposal",
    "book",
    "cards_due",
    "claim_card",
    "confirm_by_token",
    "confirm_token",
    "contact_hash",
    "fitting_slots",
    "intake_lead",
    "lead_card",
    "mark_card",
    "mark_lost",
    "open_leads",
    "parse_lead_ref",
    "proposal_by_token",
    "propose",
]

LEAD_STATES = ("new", "proposed", "booked", "lost")
OPEN_STATES = ("new", "proposed")
MERGE_DAYS = 30
#: The first key of the PostgreSQL advisory lock that serializes one practice's lead intake.
INTAKE_LOCK = 726354018
#: How long a claimed staff card may take to go out before another sender may take it (a crash mid-send).
CARD_LEASE = timedelta(minutes=10)
#: How long a proposal's confirm link works.
PROPOSAL_DAYS = 3
#: How far ahead the card looks for slots that fit, and how many it offers.
LOOK_DAYS = 21
CARD_SLOTS = 3
_EMAIL = re.compile(r"^[^@\s<>]{1,64}@[^@\s<>]{1,255}\.[^@\s<>]{2,}$")


@dataclass(frozen=True, slots=True)
class Lead:
    """A stored lead as the caller sees it (no contact details)."""

    id: int
    ref: str
    practice_id: int
    status: str
    #: new (a first submission), merged (into the person's open lead), duplicate (taken before).
    outcome: str


@dataclass(frozen=True, slots=True)
class LeadSlot:
    practitioner_id: int
    practitioner: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class LeadCard:
    """What a staff card shows of a lead: first name only, the wish, the preference, fitting slots."""

    id: int
    ref: str
    practice_id: int
    status: str
    first_name: str
    service: str
    preference: str
    practitioner: str
    location: str
    has_email: bool
    submissions: int
    timezone: str
    slots: tuple[LeadSlot, ...]
    proposed: LeadSlot | None = None
    appointment_ref: str | None = None
    #: What they wrote that matched nothing (a practitioner or place the practice does not have).
    unmatched: tuple[str, ...] = ()

    @property
    def headline(self) -> str:
        """ "New lead: Reiki, prefers Tue afternoon, Dr Lee" """
        parts = [self.service or "a visit"]
        if self.preference != "no preference":
            parts.append(f"prefers {self.preference}")
        parts += [p for p in (self.practitioner, self.location) if p]
        return "New lead: " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Proposal:
    lead_id: int
    practice: str
    practitioner: str
    start: datetime
    end: datetime
    timezone: str
    service: str
    #: Whether a mail server is set up: without one the email waits (queued) until it is.
    mail_ready: bool = True


def contact_hash(kind: str, value: str | None) -> str | None:
    """A keyed hash of an email (case-insensitive) or phone (digits), for finding a person's open lead."""
    if not value:
        return None
    norm = value.strip().lower() if kind == "email" else re.sub(r"[^0-9]", "", value)
    if kind == "phone" and len(norm) < 6:
        return None
    return hmac.new(current_box().derive(f"lead-{kind}"), norm.encode(), hashlib.sha256).hexdigest()


def _clip(text: str, limit: int = LEAD_FIELD_LIMIT) -> str:
    return " ".join(str(text or "").split())[:limit]


def _checked(form: LeadInput) -> LeadInput:
    email = _clip(form.email, 320)
    if email and not _EMAIL.match(email):
        raise Invalid("the email address is not one (name@example.org)")
    phone = _clip(form.phone, 40)
    if phone and not re.fullmatch(r"\+?[0-9 ().-]{6,40}", phone):
        raise Invalid("the phone number has characters a phone number has not")
    if not (email or phone):
        raise Invalid("a lead needs an email address or a phone number to reach the person")
    if not form.submission_id or len(form.submission_id) > 200:
        raise Invalid("a submission needs its id (1 to 200 characters)")
    return LeadInput(
        submission_id=form.submission_id, name=_clip(form.name, 200), email=email, phone=phone,
        service=_clip(form.service, 200), practitioner=_clip(form.practitioner, 200),
        location=_clip(form.location, 200), preferred_times=tuple(_clip(t, 300) for t in form.preferred_times[:10]),
        message=_clip(form.message),
    )


async def _match(session: AsyncSession, practice_id: int, form: LeadInput) -> tuple[int | None, int | None,
                                                                                   list[str]]:
    unmatched: list[str] = []
    practitioner_id = location_id = None
    if form.practitioner:
        found = await find_practitioner(session, practice_id, form.practitioner)
        if found is None:  # "Dr Lee" for a practitioner named "Lee": try without the title
            bare = re.sub(r"^(dr|doctor|mr|mrs|ms|miss)\.?\s+", "", form.practitioner, flags=re.IGNORECASE)
            rows = (await session.scalars(select(Practitioner).where(Practitioner.practice_id == practice_id))).all()
            found = next((p for p in rows if bare.lower() in p.name.lower()), None)
        if found is not None:
            practitioner_id = found.id
        else:
            unmatched.append(f"practitioner: {form.practitioner}")
    if form.location:
        try:
            location_id = (await find_location(session, practice_id, form.location)).id
        except NotFound:
            unmatched.append(f"location: {form.location}")
    return practitioner_id, location_id, unmatched


async def intake_lead(core: Core, connection_id: int | None, form: LeadInput, *, source: str,
                      practice_id: int | None = None) -> Lead:
    """Store one form submission as a lead, or merge it into the person's open lead (see the module doc).

    `connection_id` is the connection it came through (its practice's lead); without one, `practice_id`."""
    form = _checked(form)
    preference = parse_preferences(form.preferred_times)
    email_hash, phone_hash = contact_hash("email", form.email), contact_hash("phone", form.phone)
    try:
        async with core.store.session() as s:
            if connection_id is not None:
                from_conn = await s.scalar(select(_Conn.practice_id).where(_Conn.id == connection_id))
                if from_conn is None:
                    raise NotFound("that connection no longer exists")
                practice_id = int(from_conn)
            if practice_id is None or await s.get(Practice, practice_id) is None:
                raise NotFound("that practice no longer exists")
            # Two forms from one person at once must merge, not make two leads: the practice's intake
            # runs one at a time from the lookup to the commit (SQLite: the write lock; PostgreSQL: an
            # advisory lock per practice, held until the transaction ends).
            await hold_write_lock(s)
            if s.bind is not None and s.bind.dialect.name == "postgresql":
                await s.execute(text("SELECT pg_advisory_xact_lock(:k, :p)"), {"k": INTAKE_LOCK, "p": practice_id})
            taken = await s.scalar(select(SubmissionRow).where(SubmissionRow.source == source,
                                                                SubmissionRow.submission_id == form.submission_id))
            if taken is not None:
                row = await s.get(LeadRow, taken.lead_id)
                assert row is not None
                return Lead(row.id, row.ref, row.practice_id, row.status, "duplicate")
            practitioner_id, location_id, unmatched = await _match(s, practice_id, form)
            since = core.clock() - timedelta(days=MERGE_DAYS)
            keys = [c for c in (LeadRow.email_hash == email_hash if email_hash else None,
                                LeadRow.phone_hash == phone_hash if phone_hash else None) if c is not None]
            row = await s.scalar(select(LeadRow).where(
                LeadRow.practice_id == practice_id, LeadRow.status.in_(OPEN_STATES), LeadRow.created_at >= since,
                or_(*keys)).order_by(LeadRow.id).limit(1))
            wishes = {"message": form.message, "unmatched": unmatched}
            if row is None:
                row = LeadRow(
                    practice_id=practice_id, connection_id=connection_id, source=source, status="new",
                    name=form.name or None, email=form.email or None, phone=form.phone or None,
                    email_hash=email_hash, phone_hash=phone_hash, service=form.service or None,
                    practitioner_id=practitioner_id, location_id=location_id, wishes=wishes,
                    preference=preference.to_json(), submissions=1, card_status="pending",
                    created_at=core.clock(), updated_at=core.clock(),
                )
                s.add(row)
                await s.flush()
                outcome = "new"
                await audit.record(s, actor=f"lead:{source}", action="lead.new", practice_id=practice_id,
                                   details={"lead": row.ref, "source": source, "to": "new"})
            else:
                row.name = row.name or form.name or None
                row.email, row.email_hash = row.email or form.email or None, row.email_hash or email_hash
                row.phone, row.phone_hash = row.phone or form.phone or None, row.phone_hash or phone_hash
                row.service = form.service or row.service
                row.practitioner_id = practitioner_id or row.practitioner_id
                row.location_id = location_id or row.location_id
                old = dict(row.wishes or {})
                row.wishes = {"message": " / ".join(m for m in (old.get("message"), form.message) if m)[:2000],
                              "unmatched": list(dict.fromkeys([*old.get("unmatched", []), *unmatched]))}
                row.preference = TimePreference.from_json(row.preference).merged(preference).to_json()
                row.submissions += 1
                row.card_status, row.updated_at = "pending", core.clock()
                outcome = "merged"
                await audit.record(s, actor=f"lead:{source}", action="lead.merged", practice_id=practice_id,
                                   details={"lead": row.ref, "source": source, "status": row.status,
                                            "submissions": row.submissions})
            s.add(SubmissionRow(lead_id=row.id, source=source, connection_id=connection_id,
                                submission_id=form.submission_id))
            await s.flush()
            return Lead(row.id, row.ref, practice_id, row.status, outcome)
    except IntegrityError:
        # The same submission taken at the same moment by another replica: theirs stands.
        async with core.store.session() as s:
            taken = await s.scalar(select(SubmissionRow).where(SubmissionRow.source == source,
                                                                SubmissionRow.submission_id == form.submission_id))
            row = await s.get(LeadRow, taken.lead_id) if taken is not None else None
            if row is None:
                raise
            return Lead(row.id, row.ref, row.practice_id, row.status, "duplicate")


async def _lead(session: AsyncSession, practice_id: int, lead_id: int) -> LeadRow:
    row = await session.get(LeadRow, lead_id)
    if row is None or row.practice_id != practice_id:
        raise NotFound(f"there is no lead L-{lead_id}; `leads` lists the open ones")
    return row


def parse_lead_ref(ref: str) -> int:
    """`L-12` or `12` -> 12."""
    m = re.fullmatch(r"\s*L-?(\d{1,9})\s*", ref, re.IGNORECASE | re.ASCII)
    if m is None:
        raise Invalid(f"{ref!r} is not a lead id (like L-12)")
    return int(m.group(1))


async def _minutes(session: AsyncSession, practice_id: int, service: str | None) -> int:
    if not service:
        return DEFAULT_MINUTES
    rows = (await session.execute(select(Appointment.start, Appointment.end).where(
        Appointment.practice_id == practice_id, Appointment.status != "cancelled",
        Appointment.service.ilike(f"%{service}%")).order_by(Appointment.start.desc()).limit(200))).all()
    lengths = sorted(int((e - s).total_seconds() // 60) for s, e in rows if e > s)
    return lengths[len(lengths) // 2] if lengths else DEFAULT_MINUTES


async def _candidates(session: AsyncSession, row: LeadRow) -> list[Practitioner]:
    people = list((await session.scalars(select(Practitioner).where(
        Practitioner.practice_id == row.practice_id, Practitioner.active.is_(True),
        Practitioner.opted_out.is_(False)).order_by(Practitioner.name))).all())
    if row.practitioner_id is not None:
        return [p for p in people if p.id == row.practitioner_id] or people
    for column, value in ((Appointment.service, row.service), (Appointment.location_id, row.location_id)):
        if not value or not people:
            continue
        match = column.ilike(f"%{value}%") if isinstance(value, str) else column == value
        doing = set((await session.scalars(select(Appointment.practitioner_id).where(
            Appointment.practice_id == row.practice_id, Appointment.status != "cancelled", match).distinct())).all())
        narrowed = [p for p in people if p.id in doing]
        people = narrowed or people
    return people


async def fitting_slots(core: Core, practice_id: int, lead_id: int, count: int = CARD_SLOTS) -> list[LeadSlot]:
    """The next free slots that fit the lead's preference, across the matching practitioners, soonest first."""
    async with core.store.session() as s:
        row = await _lead(s, practice_id, lead_id)
        people = await _candidates(s, row)
        minutes = await _minutes(s, practice_id, row.service)
        preference = TimePreference.from_json(row.preference)
    length = timedelta(minutes=minutes)
    found: list[LeadSlot] = []
    now = core.clock()
    for person in people:
        zone = ZoneInfo(person.timezone or "UTC")
        starts = await availability.next_free_slots(core, person.id, now, length, count=400, horizon_days=LOOK_DAYS,
                                                    step=timedelta(minutes=30))
        fits = [t for t in starts if preference.fits(t.astimezone(zone), (t + length).astimezone(zone))][:count]
        found += [LeadSlot(person.id, person.name, t, t + length) for t in fits]
    found.sort(key=lambda slot: (slot.start, slot.practitioner))
    return found[:count]


async def lead_card(core: Core, practice_id: int, lead_id: int, *, with_slots: bool = True) -> LeadCard:
    """The staff card's content for one lead."""
    async with core.store.session() as s:
        row = await _lead(s, practice_id, lead_id)
        practice = await s.get(Practice, practice_id)
        assert practice is not None
        named = await s.get(Practitioner, row.practitioner_id) if row.practitioner_id else None
        place = await s.get(Location, row.location_id) if row.location_id else None
        proposed = None
        if row.status == "proposed" and row.proposed_start and row.proposed_end and row.proposed_practitioner_id:
            who = await s.get(Practitioner, row.proposed_practitioner_id)
            proposed = LeadSlot(row.proposed_practitioner_id, who.name if who else "?", row.proposed_start,
                                row.proposed_end)
        card = LeadCard(
            id=row.id, ref=row.ref, practice_id=practice_id, status=row.status,
            first_name=(row.name or "").split(" ")[0], service=row.service or "",
            preference=TimePreference.from_json(row.preference).label(), practitioner=named.name if named else "",
            location=place.name if place else "", has_email=bool(row.email), submissions=row.submissions,
            timezone=practice.timezone, slots=(), proposed=proposed,
            appointment_ref=f"A-{row.appointment_id}" if row.appointment_id else None,
            unmatched=tuple((row.wishes or {}).get("unmatched", ())),
        )
    if with_slots and card.status in OPEN_STATES:
        slots = tuple(await fitting_slots(core, practice_id, lead_id))
        card = LeadCard(**{**{f: getattr(card, f) for f in card.__dataclass_fields__}, "slots": slots})
    return card


async def open_leads(core: Core, practice_id: int, limit: int = 20) -> list[LeadCard]:
    """The practice's open leads, newest first (without slot searches: `lead L-12` shows one with them)."""
    async with core.store.session() as s:
        ids = list((await s.scalars(select(LeadRow.id).where(
            LeadRow.practice_id == practice_id, LeadRow.status.in_(OPEN_STATES))
            .order_by(LeadRow.id.desc()).limit(limit))).all())
    return [await lead_card(core, practice_id, i, with_slots=False) for i in ids]


async def mark_card(core: Core, lead_id: int, status: str) -> None:
    """Record whether the staff card went out (sent) or reached nobody (failed)."""
    async with core.store.session() as s:
        row = await s.get(LeadRow, lead_id)
        if row is not None:
            row.card_status, row.updated_at = status, core.clock()


async def claim_card(core: Core, lead_id: int) -> bool:
    """Take the lead's card for sending (pending or failed -> sending); False when another sender has it,
    so two replicas (or the retry job and the intake) never post it twice. A claim older than
    CARD_LEASE (its sender died mid-send) may be taken again."""
    now = core.clock()
    async with core.store.session() as s:
        done = await s.execute(update(LeadRow).where(
            LeadRow.id == lead_id,
            or_(LeadRow.card_status.in_(("pending", "failed")),
                (LeadRow.card_status == "sending") & (LeadRow.updated_at <= now - CARD_LEASE)))
            .values(card_status="sending", updated_at=now))
        return getattr(done, "rowcount", 0) == 1


async def cards_due(core: Core, *, quiet_for: timedelta, give_up_after: timedelta, limit: int = 20) -> list[Lead]:
    """Open leads whose card has not reached anyone (left pending, or failed) and was last tried more than
    `quiet_for` ago; a lead older than `give_up_after` is left to the `leads` list."""
    now = core.clock()
    async with core.store.session() as s:
        rows = (await s.scalars(select(LeadRow).where(
            or_(LeadRow.card_status.in_(("pending", "failed")),
                (LeadRow.card_status == "sending") & (LeadRow.updated_at <= now - CARD_LEASE)),
            LeadRow.status.in_(OPEN_STATES),
            LeadRow.updated_at <= now - quiet_for, LeadRow.created_at >= now - give_up_after)
            .order_by(LeadRow.id).limit(limit))).all()
        return [Lead(r.id, r.ref, r.practice_id, r.status, "retry") for r in rows]


# --- proposing and booking -----------------------------------------------------------------------


def confirm_token(lead_id: int, nonce: str) -> str:
    """The confirm link's token: the lead and its proposal's nonce, signed (no contact details in the URL)."""
    body = base64.urlsafe_b64encode(json.dumps([lead_id, nonce]).encode()).decode().rstrip("=")
    mac = hmac.new(current_box().derive("lead-confirm"), body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def _read_token(token: str) -> tuple[int, str] | None:
    if not token or len(token) > 300 or token.count(".") != 1:
        return None
    body, mac = token.split(".")
    want = hmac.new(current_box().derive("lead-confirm"), body.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(mac.encode("ascii", "replace"), want.encode()):
        return None
    try:
        lead_id, nonce = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, TypeError):
        return None
    if not isinstance(lead_id, int) or not isinstance(nonce, str):
        return None
    return lead_id, nonce


async def _slot(core: Core, practice_id: int, practitioner_id: int, start: datetime,
                minutes: int | None = None) -> tuple[Practitioner, datetime]:
    if start.tzinfo is None:
        raise Invalid("the time needs a time zone")
    async with core.store.session() as s:
        person = await s.get(Practitioner, practitioner_id)
        if person is None or person.practice_id != practice_id or not person.active:
            raise NotFound("that practitioner is not taking bookings here")
    if start < core.clock():
        raise Conflict("that time has passed; pick one of the card's slots")
    end = start + timedelta(minutes=minutes or DEFAULT_MINUTES)
    check = await availability.check_slot(core, practitioner_id, start, end)
    if not check.free:
        raise Conflict("that slot is no longer free; the card shows the next ones")
    return person, end


async def propose(core: Core, practice_id: int, lead_id: int, practitioner_id: int, start: datetime, *,
                  actor: str) -> Proposal:
    """Offer the client a slot: an email with a confirm link is queued, the lead is `proposed`."""
    async with core.store.session() as s:
        row = await _lead(s, practice_id, lead_id)
        minutes = await _minutes(s, practice_id, row.service)
    person, end = await _slot(core, practice_id, practitioner_id, start, minutes)
    async with core.store.session() as s:
        row = await _lead(s, practice_id, lead_id)
        if row.status not in OPEN_STATES:
            raise Conflict(f"{row.ref} is {row.status}; nothing to propose")
        if not row.email:
            raise Conflict(f"{row.ref} left no email address: call them, then `Book directly`")
        practice = await s.get(Practice, practice_id)
        assert practice is not None
        nonce = secrets.token_hex(8)
        was = row.status
        row.status, row.proposal_nonce, row.proposed_at = "proposed", nonce, core.clock()
        row.proposed_start, row.proposed_end, row.proposed_practitioner_id = start, end, practitioner_id
        link = f"{core.settings.base_url().rstrip('/')}/leads/confirm?t={confirm_token(row.id, nonce)}"
        s.add(ClientNotice(
            practice_id=practice_id, appointment_id=None, key=f"lead:{row.id}:{nonce}:proposed:email",
            kind="proposed", channel="email", recipient=row.email, recipient_name=row.name,
            payload={"start": start.isoformat(), "end": end.isoformat(), "zone": practice.timezone,
                     "practitioner": person.name, "service": row.service or "", "location": "",
                     "practice": practice.name, "confirm_url": link,
                     "language": (practice.settings or {}).get("client_language", "en")},
            # Like every client message: nothing leaves in the practice's quiet hours for clients.
            next_attempt_at=quiet_until(notice_settings(practice.settings, practice.name).quiet, core.clock(),
                                        ZoneInfo(practice.timezone)),
        ))
        await audit.record(s, actor=actor, action="lead.proposed", practice_id=practice_id,
                           details={"lead": row.ref, "from": was, "to": "proposed", "practitioner_id": practitioner_id,
                                    "start": start.isoformat()})
        return Proposal(row.id, practice.name, person.name, start, end, practice.timezone, row.service or "",
                        mail_ready="email" in configured_channels(core))


async def _create_visit(core: Core, s: AsyncSession, row: LeadRow, practitioner_id: int, start: datetime,
                        end: datetime, actor: str) -> Appointment:
    practice = await s.get(Practice, row.practice_id)
    assert practice is not None
    await appointments.hold_schedule(s, practitioner_id)
    if await appointments.find_overlaps(s, practitioner_id, start, end):
        raise Conflict("that slot was taken meanwhile; the card shows the next free ones")
    appt = Appointment(
        practice_id=row.practice_id, practitioner_id=practitioner_id, location_id=row.location_id,
        title=row.service or "Visit", client_name=row.name, client_email=row.email, client_phone=row.phone,
        service=row.service, start=start, end=end, tzid=practice.timezone, status="confirmed", version=1,
    )
    s.add(appt)
    await s.flush()
    after: dict[str, Any] = {"start": start, "end": end, "status": "confirmed", "practitioner_id": practitioner_id,
                             "service": row.service}
    await audit.record(s, actor=actor, action="appointment.created", practice_id=row.practice_id,
                       appointment_id=appt.id, after=after, details={"lead": row.ref})
    await core.bus.emit(s, AppointmentEvent(kind="created", appointment_id=appt.id, version=1,
                                            practice_id=row.practice_id, practitioner_id=practitioner_id,
                                            actor=actor, after=dict(after)))
    was = row.status
    row.status, row.appointment_id, row.proposal_nonce = "booked", appt.id, None
    await audit.record(s, actor=actor, action="lead.booked", practice_id=row.practice_id, appointment_id=appt.id,
                       details={"lead": row.ref, "from": was, "to": "booked"})
    return appt


async def book(core: Core, practice_id: int, lead_id: int, practitioner_id: int, start: datetime, *,
               actor: str) -> str:
    """Staff book the lead straight into a slot (clinicbot's own appointment, copied to the mirrors);
    the new appointment's ref."""
    async with core.store.session() as s:
        row = await _lead(s, practice_id, lead_id)
        minutes = await _minutes(s, practice_id, row.service)
    _, end = await _slot(core, practice_id, practitioner_id, start, minutes)
    async with core.store.session() as s:
        row = await _lead(s, practice_id, lead_id)
        if row.status not in OPEN_STATES:
            raise Conflict(f"{row.ref} is {row.status} already")
        appt = await _create_visit(core, s, row, practitioner_id, start, end, actor)
        return appt.ref


async def proposal_by_token(core: Core, token: str) -> Proposal | None:
    """What a confirm link proposes (its page), or None when the link is not (or no longer) good."""
    read = _read_token(token)
    if read is None:
        return None
    async with core.store.session() as s:
        row = await s.get(LeadRow, read[0])
        if row is None or row.status != "proposed" or row.proposal_nonce != read[1] or row.proposed_start is None \
                or row.proposed_end is None or row.proposed_practitioner_id is None:
            return None
        if row.proposed_at is not None and core.clock() - row.proposed_at > timedelta(days=PROPOSAL_DAYS):
            return None
        practice = await s.get(Practice, row.practice_id)
        person = await s.get(Practitioner, row.proposed_practitioner_id)
        if practice is None or person is None:
            return None
        return Proposal(row.id, practice.name, person.name, row.proposed_start, row.proposed_end,
                        practice.timezone, row.service or "")


async def confirm_by_token(core: Core, token: str) -> Proposal | None:
    """The client confirms through their link: the visit is booked; None when the link is not good.

    Raises Conflict when the slot was taken meanwhile (the practice is asked to propose another)."""
    proposal = await proposal_by_token(core, token)
    read = _read_token(token)
    if proposal is None or read is None:
        return None
    async with core.store.session() as s:
        row = await s.get(LeadRow, proposal.lead_id)
        if row is None or row.status != "proposed" or row.proposal_nonce != read[1] \
                or row.proposed_practitioner_id is None or row.proposed_start is None or row.proposed_end is None:
            return None  # confirmed (or re-proposed) meanwhile
        await _create_visit(core, s, row, row.proposed_practitioner_id, row.proposed_start, row.proposed_end,
                            "client:link")
    return proposal


async def mark_lost(core: Core, practice_id: int, lead_id: int, *, actor: str, reason: str = "") -> Lead:
    """Give up on a lead (the person went elsewhere, never answered)."""
    async with core.store.session() as s:
        row = await _lead(s, practice_id, lead_id)
        if row.status == "lost":
            return Lead(row.id, row.ref, practice_id, row.status, "unchanged")
        if row.status == "booked":
            raise Conflict(f"{row.ref} is booked ({'A-' + str(row.appointment_id) if row.appointment_id else ''}); "
                           "cancel the visit instead")
        was = row.status
        row.status, row.proposal_nonce, row.updated_at = "lost", None, utcnow()
        await audit.record(s, actor=actor, action="lead.lost", practice_id=practice_id,
                           details={"lead": row.ref, "from": was, "to": "lost", "reason": reason[:200]})
        return Lead(row.id, row.ref, practice_id, "lost", "lost")
