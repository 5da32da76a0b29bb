"""The sync core's data model: typed SQLAlchemy 2 mappings shared by SQLite and PostgreSQL.

Times are stored in UTC (`UTCDateTime`) and come back aware; the zone an appointment was booked in
is kept beside it (`tzid`) so wall-clock times survive DST. Patient fields and credentials use
the encrypted column types from sync.store.crypto.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from sync.store.crypto import EncryptedBytes, EncryptedJSON, EncryptedText

__all__ = [
    "ACTIVITY",
    "Alarm",
    "AppWebhook",
    "Appointment",
    "AttachmentCopy",
    "AuditEntry",
    "Base",
    "Calendar",
    "ChatIdentity",
    "ClientNotice",
    "ClientOptOut",
    "ConflictNotice",
    "Connection",
    "ConsentGrant",
    "ExternalIdentity",
    "Lead",
    "LeadSubmission",
    "Link",
    "Location",
    "OAuthState",
    "OutboxOp",
    "Practice",
    "Practitioner",
    "ReminderLedger",
    "Role",
    "ShiftRow",
    "UTCDateTime",
    "WebhookDelivery",
    "WebhookSubscription",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend (SQLite drops zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Practice(Base):
    """A clinic: the tenant everything else belongs to."""

    __tablename__ = "practice"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    teams_tenant_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    slack_team_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    #: Practice-wide policies: busy_word, deleted_mirror ("recreate"|"leave"), cancel_mode
    #: ("cancel"|"delete"), send_updates, reminder defaults ...
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: What a hand edit of a mirror copy does: "card" (staff decide), "follow" (a practitioner's move
    #: in their own calendar reschedules the appointment) or "keep" (the copy is put back).
    mirror_edits: Mapped[str] = mapped_column(String(8), default="card", server_default="card")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    practitioners: Mapped[list[Practitioner]] = relationship(back_populates="practice")


class Location(Base):
    """A place the practice sees clients; appointments are placed at one from their platform's location."""

    __tablename__ = "location"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(String(64))
    #: Other names and platform ids that mean this place (a Square location id, "Northside Clinic").
    refs: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")

    __table_args__ = (UniqueConstraint("practice_id", "name", name="uq_location_name"),)


class Practitioner(Base):
    __tablename__ = "practitioner"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Short handle used in chat, e.g. "dr-lee" for `@dr-lee`.
    handle: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # The Microsoft Graph mapping (UPN, Entra object id) is in ExternalIdentity (integration "graph").
    #: offsets_minutes, agenda_time, quiet_start, quiet_end, working_days, enabled.
    reminder_prefs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Opted out of sync and reminders altogether.
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    practice: Mapped[Practice] = relationship(back_populates="practitioners")

    __table_args__ = (UniqueConstraint("practice_id", "handle", name="uq_practitioner_handle"),)


#: A channel or group chat the bot was added to is kept as a ChatIdentity whose user_id is this
#: prefix plus the conversation id, so it can hold a conversation reference like a person.
CHANNEL_PREFIX = "conversation:"


class ChatIdentity(Base):
    """A person on a chat platform, with what we need to DM them."""

    __tablename__ = "chat_identity"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))  # "teams" | "slack"
    #: Teams tenant id or Slack team id.
    workspace_id: Mapped[str] = mapped_column(String(64), default="")
    user_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str | None] = mapped_column(String(200))
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioner.id", ondelete="SET NULL"))
    #: Teams ConversationReference (serialized) or Slack DM channel id, for proactive messages.
    conversation_ref: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("platform", "workspace_id", "user_id", name="uq_chat_identity_user"),)


class Role(Base):
    __tablename__ = "role"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_identity_id: Mapped[int] = mapped_column(ForeignKey("chat_identity.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # "admin" | "staff" | "practitioner"
    granted_by: Mapped[str | None] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("chat_identity_id", "role", name="uq_role_identity_role"),)


class Connection(Base):
    """One account on one provider (a CalDAV login, a Microsoft mailbox, a Calendly org ...)."""

    __tablename__ = "connection"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"), index=True)
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioner.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(32))  # "caldav", "ics", "graph", "google", ...
    #: A label safe to show: an account email, a server host. Never a secret.
    account: Mapped[str] = mapped_column(String(320), default="")
    #: Non-secret configuration: base URL, principal URL, tenant ...
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    credentials: Mapped[Any | None] = mapped_column(EncryptedJSON)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|auth_expired|error|disabled|removing
    cursor: Mapped[str | None] = mapped_column(Text)
    window_days_back: Mapped[int] = mapped_column(Integer, default=30)
    window_days_ahead: Mapped[int] = mapped_column(Integer, default=180)
    sync_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    calendars: Mapped[list[Calendar]] = relationship(back_populates="connection", cascade="all, delete-orphan")


class Calendar(Base):
    """A remote calendar inside a connection, with its role in the sync."""

    __tablename__ = "calendar"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"), index=True)
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioner.id", ondelete="SET NULL"))
    remote_id: Mapped[str] = mapped_column(Text)  # URL, calendar id ...
    name: Mapped[str] = mapped_column(String(300), default="")
    role: Mapped[str] = mapped_column(String(8), default="source")  # source|mirror|busy|work
    projection: Mapped[str] = mapped_column(String(8), default="initials")  # busy|initials|full
    sync_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Show clinicbot's copies as free rather than busy ("send as free").
    show_as_free: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The platform lets us read but not write it (as its adapter reported at discovery): it can be a
    #: source or busy calendar, never a mirror, and bookings on it are not moved there.
    read_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    timezone: Mapped[str | None] = mapped_column(String(64))
    cursor: Mapped[str | None] = mapped_column(Text)
    cursor_updated_at: Mapped[datetime | None]
    last_full_sync_at: Mapped[datetime | None]
    #: What the last read of this calendar skipped or repaired ("skipped <uid> line 12: ..."), shown
    #: with its connection's health by `sync status` and `doctor`.
    read_notes: Mapped[list[Any]] = mapped_column(default=list)
    #: Copying the appointments that already exist onto a calendar that became a mirror:
    #: "pending" (appointments still to be queued), "copying" (all queued; copies being written),
    #: "done", or None (never asked). Resumable: `backfill_after` is the last appointment id queued.
    backfill_state: Mapped[str | None] = mapped_column(String(8))
    backfill_after: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Appointments in the window when the backfill started, and how many of them got a copy queued.
    backfill_total: Mapped[int] = mapped_column(default=0, server_default="0")
    backfill_queued: Mapped[int] = mapped_column(default=0, server_default="0")
    backfill_requested_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    connection: Mapped[Connection] = relationship(back_populates="calendars")

    __table_args__ = (UniqueConstraint("connection_id", "remote_id", name="uq_calendar_remote"),)

    def ask_backfill(self, now: datetime) -> None:
        """Copy every appointment already in the window onto this calendar at its next sync (it just
        became a mirror, was pointed at another practitioner, or syncs again after a pause)."""
        self.backfill_state, self.backfill_after = "pending", 0
        self.backfill_total = self.backfill_queued = 0
        self.backfill_requested_at = now


class Appointment(Base):
    """The canonical record of one appointment (or one recurring series)."""

    __tablename__ = "appointment"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"), index=True)
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioner.id", ondelete="SET NULL"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id", ondelete="SET NULL"))
    #: The source calendar and the event's UID there (the booking's identity).
    source_calendar_id: Mapped[int | None] = mapped_column(ForeignKey("calendar.id", ondelete="SET NULL"))
    source_uid: Mapped[str | None] = mapped_column(String(512))
    recurrence_key: Mapped[str] = mapped_column(String(64), default="")
    title: Mapped[str | None] = mapped_column(EncryptedText)
    client_name: Mapped[str | None] = mapped_column(EncryptedText)
    client_email: Mapped[str | None] = mapped_column(EncryptedText)
    #: As the booking platform has it (Square's customer, Acuity's appointment, Calendly's invitee).
    client_phone: Mapped[str | None] = mapped_column(EncryptedText)
    notes: Mapped[str | None] = mapped_column(EncryptedText)
    service: Mapped[str | None] = mapped_column(String(200))
    location_text: Mapped[str | None] = mapped_column(EncryptedText)
    start: Mapped[datetime] = mapped_column(index=True)
    end: Mapped[datetime]
    tzid: Mapped[str | None] = mapped_column(String(64))
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    rrule: Mapped[str | None] = mapped_column(Text)
    exdates: Mapped[list[Any]] = mapped_column(default=list)
    #: RDATEs of a series (ISO texts): visits it has besides its rules.
    rdates: Mapped[list[Any]] = mapped_column(default=list)
    #: confirmed|tentative|cancelled|no_show|completed
    status: Mapped[str] = mapped_column(String(16), default="confirmed")
    transparent: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: "appointment", or "activity": an event of a work calendar someone chose to track (its source
    #: calendar is that work calendar; untracking deletes the row).
    kind: Mapped[str] = mapped_column(String(12), default="appointment", server_default="appointment")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    links: Mapped[list[Link]] = relationship(back_populates="appointment", cascade="all, delete-orphan")

    __table_args__ = (
        UniqueConstraint("source_calendar_id", "source_uid", "recurrence_key", name="uq_appointment_source"),
        Index("ix_appointment_practitioner_start", "practitioner_id", "start"),
    )

    @property
    def ref(self) -> str:
        """The id staff type in chat, e.g. A-1042."""
        return f"A-{self.id}"


#: Appointment.kind of a tracked work-calendar event.
ACTIVITY = "activity"


class Link(Base):
    """One appointment on one calendar: the sync status, in the manner of vdirsyncer."""

    __tablename__ = "link"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointment.id", ondelete="CASCADE"), index=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendar.id", ondelete="CASCADE"))
    remote_id: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    #: Content hash of what the remote held at the last sync (EventData.content_hash()).
    content_hash: Mapped[str | None] = mapped_column(String(64))
    #: ok | pending (outbox op in flight) | conflict | gone (deleted remotely, policy: leave)
    state: Mapped[str] = mapped_column(String(16), default="ok")
    last_synced_at: Mapped[datetime | None]

    appointment: Mapped[Appointment] = relationship(back_populates="links")

    __table_args__ = (
        UniqueConstraint("appointment_id", "calendar_id", name="uq_link_appointment_calendar"),
        Index("ix_link_calendar_remote", "calendar_id", "remote_id"),
    )


class OutboxOp(Base):
    """A remote write to perform, written in the same transaction as the state change."""

    __tablename__ = "outbox_op"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"), index=True)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("calendar.id", ondelete="CASCADE"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointment.id", ondelete="SET NULL"))
    #: create | update | delete | source_reschedule | source_cancel
    op: Mapped[str] = mapped_column(String(24))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    #: pending | done | failed (retries exhausted; visible in status) | dead (superseded)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_outbox_op_due", "status", "next_attempt_at"),)


class AuditEntry(Base):
    """Append-only, hash-chained record of every change (see sync.store.audit)."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    #: "system", "cli:<user>", "slack:<team>/<user>", "teams:<tenant>/<aad id>"
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    practice_id: Mapped[int | None] = mapped_column(Integer)
    appointment_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: Changed fields before and after; patient fields are stored as fingerprints, not values.
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The audit chain's signed head: the last seq and hash, kept in the appending transaction.

    A row deleted from the end of the chain leaves the head pointing past it; the MAC (a key
    derived from the secret key) stops anyone without the key from moving the head back.
    `keyed_from` is the first seq chained with the keyed MAC: rows before it were written by an
    older clinicbot with plain SHA-256 and are anchored by the first keyed row (or the head).
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
    keyed_from: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    #: None only straight after the migration, before this chain's first keyed append.
    mac: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ReminderLedger(Base):
    """One delivery of one reminder; the unique key makes delivery at most once.

    Rows are planned ahead (status "planned") and are the scheduler's source of truth: a single
    dispatcher claims due rows ("sending", committed before the send), then marks them "sent",
    "retry" (with `next_attempt_at`), "failed", "dropped" (missed beyond the grace period),
    "stale" (the appointment moved or was cancelled) or "unknown" (the sender died mid-send).
    Agenda rows use appointment_id 0 and kind "agenda:<practitioner id>".
    """

    __tablename__ = "reminder_ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(32))  # reminder:1440, agenda:<id>, followup ...
    fire_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12), default="sending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    practitioner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: When the dispatcher next tries this row (fire_at at first, later the retry backoff).
    next_attempt_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("appointment_id", "kind", "fire_at", name="uq_reminder_once"),
        Index("ix_reminder_ledger_due", "status", "next_attempt_at"),
    )


class ConflictNotice(Base):
    """One conflict the engine raised, told to staff at most once (unique key), then decided.

    kind "conflict": a mirror copy edited by hand (link_id); "double_booking": two appointments of
    one practitioner in one slot. The row is written in the sync transaction and delivered after
    it commits; `status` tracks the delivery, `resolved_*` the staff decision.
    """

    __tablename__ = "conflict_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    #: conflict:<link>:<remote version> or double_booking:<appt>:<version>:<other>
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True)
    link_id: Mapped[int | None] = mapped_column(Integer, index=True)
    calendar_id: Mapped[int | None] = mapped_column(Integer)
    appointment_id: Mapped[int] = mapped_column(Integer)
    other_appointment_id: Mapped[int | None] = mapped_column(Integer)
    remote_start: Mapped[datetime | None]
    remote_end: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|sending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    decision: Mapped[str | None] = mapped_column(String(24))


class Alarm(Base):
    """One incident staff must hear about (an expired sign-in, a failing connection ...), told once.

    `open_key` ("<kind>:<subject>") is set while the incident lasts and cleared (NULL) when it ends,
    so its unique constraint allows one open incident per subject, across restarts and replicas,
    and a later recurrence is a new row. `notice_status` tracks the opening message,
    `recovery_status` the "back to normal" message; each is claimed with a conditional UPDATE
    before it is sent (see sync.notify.alarms).
    """

    __tablename__ = "alarm"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(Integer, index=True)
    #: auth_expired | push_failed | push_removed | failing | outbox_failed
    kind: Mapped[str] = mapped_column(String(24))
    #: "connection:<id>" or "calendar:<id>"
    subject: Mapped[str] = mapped_column(String(64))
    open_key: Mapped[str | None] = mapped_column(String(96), unique=True)
    connection_id: Mapped[int | None] = mapped_column(Integer)
    calendar_id: Mapped[int | None] = mapped_column(Integer)
    #: What the message shows (provider, account, counts, error class); never patient data.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    cleared_at: Mapped[datetime | None]
    #: pending | sending | sent | failed | skipped (cleared before it was told)
    notice_status: Mapped[str] = mapped_column(String(12), default="pending")
    #: none | pending | sending | sent | failed
    recovery_status: Mapped[str] = mapped_column(String(12), default="none")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)


class OAuthState(Base):
    """A single-use, expiring state for an OAuth or admin-consent round trip, bound to one chat user."""

    __tablename__ = "oauth_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(128), unique=True)
    purpose: Mapped[str] = mapped_column(String(32))  # "graph", "google", "consent", ...
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"))
    chat_identity_id: Mapped[int | None] = mapped_column(ForeignKey("chat_identity.id", ondelete="CASCADE"))
    #: PKCE verifier, MSAL flow dict ...: secret, so encrypted.
    secret: Mapped[Any | None] = mapped_column(EncryptedJSON)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentGrant(Base):
    """An Entra admin-consent outcome for a practice's tenant."""

    __tablename__ = "consent_grant"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    granted: Mapped[bool] = mapped_column(Boolean)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_description: Mapped[str | None] = mapped_column(Text)
    granted_by: Mapped[int | None] = mapped_column(ForeignKey("chat_identity.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookSubscription(Base):
    """A push channel at a provider (Graph subscription, Google watch channel)."""

    __tablename__ = "webhook_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"), index=True)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("calendar.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    remote_id: Mapped[str] = mapped_column(String(256))  # subscription id / channel id
    resource_id: Mapped[str | None] = mapped_column(String(512))
    #: clientState / channel token, compared in constant time.
    secret: Mapped[str | None] = mapped_column(EncryptedText)
    expires_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("provider", "remote_id", name="uq_webhook_subscription_remote"),)


class AppWebhook(Base):
    """A webhook destination that serves the whole app at a provider (Nylas: one per application,
    every grant's deliveries routed by their grant id), with its signing secret."""

    __tablename__ = "app_webhook"

    id: Mapped[int] = mapped_column(primary_key=True)
    integration: Mapped[str] = mapped_column(String(32), unique=True)
    remote_id: Mapped[str] = mapped_column(String(256))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(EncryptedText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None]


class AttachmentCopy(Base):
    """An attachment of a tracked activity, fetched from its calendar when someone opened it and
    kept encrypted for at most a few days (`expires_at`); the retention job deletes it then."""

    __tablename__ = "attachment_copy"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"), index=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointment.id", ondelete="CASCADE"), index=True)
    #: The attachment's id at the provider (with the event's, it fetches the file again).
    remote_id: Mapped[str] = mapped_column(String(512))
    filename: Mapped[str] = mapped_column(EncryptedText)
    content_type: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(EncryptedBytes)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)

    __table_args__ = (UniqueConstraint("appointment_id", "remote_id", name="uq_attachment_copy_remote"),)


class ExternalIdentity(Base):
    """A practitioner's identity on one integration (Square team member, Acuity calendar, Calendly user...).

    Platforms name staff their own way; this one table maps every such name to a practitioner, so a
    booking for that name lands on the right person. Unique per (integration, kind, external id).
    """

    __tablename__ = "external_identity"

    id: Mapped[int] = mapped_column(primary_key=True)
    practitioner_id: Mapped[int] = mapped_column(ForeignKey("practitioner.id", ondelete="CASCADE"), index=True)
    integration: Mapped[str] = mapped_column(String(32))
    #: upn | object_id | team_member | calendar | user_uri ...
    kind: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(512))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("integration", "kind", "external_id", name="uq_external_identity_ref"),
    )


class WebhookDelivery(Base):
    """One webhook delivery already accepted (platform event id or body hash): the persisted replay memory.

    Signatures of Square and Acuity carry no timestamp, so a replay is only recognised by its key;
    the table is trimmed to the newest rows per connection, so it stays bounded.
    """

    __tablename__ = "webhook_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    integration: Mapped[str] = mapped_column(String(32))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("integration", "connection_id", "key", name="uq_webhook_delivery_key"),
        Index("ix_webhook_delivery_connection_seen", "connection_id", "seen_at"),
    )


# --- Slack OAuth install (multi-workspace) --------------------------------------------------------
# The layout slack_sdk's SQLAlchemy installation and state stores read and write (slack_sdk 3.x),
# declared here so migrations own them. Token columns are Text: the bot layer stores them encrypted.
from sqlalchemy import Column, Table  # noqa: E402

slack_installations = Table(
    "slack_installations", Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("enterprise_url", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", Text),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", Text),
    Column("bot_token_expires_at", DateTime),
    Column("user_id", String(32), nullable=False),
    Column("user_token", Text),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", Text),
    Column("user_token_expires_at", DateTime),
    Column("incoming_webhook_url", Text),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("is_enterprise_install", Boolean, default=False, nullable=False),
    Column("token_type", String(32)),
    Column("installed_at", DateTime, nullable=False),
    Index("slack_installations_idx", "client_id", "enterprise_id", "team_id", "user_id", "installed_at"),
)

slack_bots = Table(
    "slack_bots", Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", Text),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", Text),
    Column("bot_token_expires_at", DateTime),
    Column("is_enterprise_install", Boolean, default=False, nullable=False),
    Column("installed_at", DateTime, nullable=False),
    Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)

slack_oauth_states = Table(
    "slack_oauth_states", Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)


class ShiftRow(Base):
    """One shift of a schedule source, what should be in its person's calendar, and what is there.

    The import writes the wanted state (mailbox and event fingerprint; None: no event wanted) in one
    transaction with the schedule; the publisher brings the published state (mailbox, event id,
    fingerprint) up to it and records each write as it lands. A row whose two states differ is
    pending: a crash between the two loses nothing, and a re-run writes only what still differs.
    """

    __tablename__ = "shift"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    shift_key: Mapped[str] = mapped_column(String(200))
    person_name: Mapped[str] = mapped_column(String(200))
    #: unique_id, custom1..custom4 as the scheduler exported them (empty ones left out).
    person_ids: Mapped[dict[str, Any]] = mapped_column(default=dict)
    assignment: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    notes: Mapped[str | None] = mapped_column(EncryptedText)
    #: On the schedule as published, in the latest snapshot (False: unpublished or removed).
    live: Mapped[bool] = mapped_column(Boolean, default=True)
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioner.id", ondelete="SET NULL"))
    want_mailbox: Mapped[str | None] = mapped_column(String(320))
    want_hash: Mapped[str | None] = mapped_column(String(64))
    pub_mailbox: Mapped[str | None] = mapped_column(String(320))
    pub_remote_id: Mapped[str | None] = mapped_column(String(512))
    pub_hash: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: What is in the team's Teams Shifts schedule when the source publishes there: the person's
    #: mailbox it was written for, the shift's id, and the fingerprint written.
    teams_mailbox: Mapped[str | None] = mapped_column(String(320))
    teams_remote_id: Mapped[str | None] = mapped_column(String(512))
    teams_hash: Mapped[str | None] = mapped_column(String(64))
    #: The mailbox an Outlook create of this shift was last sent to while its answer is not recorded:
    #: the event may exist there unrecorded, so the next publish looks there for clinicbot's marked
    #: events (adopting this shift's, deleting ones no shift records) before the mark is cleared.
    sent_mailbox: Mapped[str | None] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("source_id", "shift_key", name="uq_shift_source_key"),
        Index("ix_shift_practice_starts", "practice_id", "starts_at"),
    )
class ClientNotice(Base):
    """One message to a client about their visit, queued in the transaction of the change it tells.

    `key` (appointment, version, kind, channel) makes queueing idempotent; the sender job sends it,
    retries what the mail server defers, and gives up (failed) after its attempts.
    """

    __tablename__ = "client_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"), index=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointment.id", ondelete="SET NULL"))
    key: Mapped[str] = mapped_column(String(128), unique=True)
    #: booked | moved | cancelled
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(8), default="email")
    recipient: Mapped[str] = mapped_column(EncryptedText)
    recipient_name: Mapped[str | None] = mapped_column(EncryptedText)
    #: What the message says, fixed when queued: times, zone, practitioner, service, location, sequence.
    payload: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    #: pending | sending (claimed) | sent | failed | bounced (taken, then not delivered) | skipped (opted out,
    #: or nothing to send by the time it was due)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    #: The platform's id of the message once it took it (a Twilio SID): its delivery reports name it.
    remote_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_client_notice_due", "status", "next_attempt_at"),
                      Index("ix_client_notice_remote_id", "remote_id"))


class ClientOptOut(Base):
    """A client who asked for no more messages from a practice, by a keyed hash of their address."""

    __tablename__ = "client_optout"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"))
    address_hash: Mapped[str] = mapped_column(String(64))
    #: link | cli | chat | sms
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("practice_id", "address_hash", name="uq_client_optout_address"),)


class SmsInbound(Base):
    """A client's text already acted on (by its platform message id): a replayed STOP or START changes nothing.

    Only the id, what it asked and when are kept; never the number or the text.
    """

    __tablename__ = "sms_inbound"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str] = mapped_column(String(64))
    #: stop | start | other
    intent: Mapped[str] = mapped_column(String(8))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("provider", "message_id", name="uq_sms_inbound_message"),)


class Lead(Base):
    """A prospective client from a form, until they are booked or given up on.

    The person's name, email and phone are encrypted; keyed hashes of the email and phone find
    their open lead when they write again within 30 days (merged, not duplicated). Its life,
    new -> proposed -> booked (or lost), is audited.
    """

    __tablename__ = "lead"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connection.id", ondelete="SET NULL"))
    #: The integration it came from: leadform, calendly, hubspot ...
    source: Mapped[str] = mapped_column(String(32))
    #: new | proposed | booked | lost
    status: Mapped[str] = mapped_column(String(12), default="new")
    name: Mapped[str | None] = mapped_column(EncryptedText)
    email: Mapped[str | None] = mapped_column(EncryptedText)
    phone: Mapped[str | None] = mapped_column(EncryptedText)
    email_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    service: Mapped[str | None] = mapped_column(String(200))
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioner.id", ondelete="SET NULL"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id", ondelete="SET NULL"))
    #: What they wrote and clinicbot could not match (a practitioner or place it does not know), and
    #: their other words; encrypted, since people write anything in a form.
    wishes: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)
    #: Preferred times as understood (windows) and kept as text (sync.services.lead_times).
    preference: Mapped[dict[str, Any]] = mapped_column(default=dict)
    submissions: Mapped[int] = mapped_column(Integer, default=1)
    proposed_start: Mapped[datetime | None]
    proposed_end: Mapped[datetime | None]
    proposed_practitioner_id: Mapped[int | None] = mapped_column(
        ForeignKey("practitioner.id", ondelete="SET NULL"))
    proposed_at: Mapped[datetime | None]
    #: Changes with every proposal, so only the newest confirm link works, and only once.
    proposal_nonce: Mapped[str | None] = mapped_column(String(32))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointment.id", ondelete="SET NULL"))
    #: The staff card: pending | sent | failed (nobody reachable).
    card_status: Mapped[str] = mapped_column(String(12), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_lead_practice_status", "practice_id", "status"),)

    @property
    def ref(self) -> str:
        """The id staff type in chat, e.g. L-12."""
        return f"L-{self.id}"


class LeadSubmission(Base):
    """One form submission taken (by its platform id): a repeat of it changes nothing."""

    __tablename__ = "lead_submission"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(32))
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connection.id", ondelete="SET NULL"))
    submission_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("source", "submission_id", name="uq_lead_submission_key"),)


class CrmEntry(Base):
    """One visit in one CRM connection: what the CRM should hold (`want`, at `want_version`) and what
    it was last written as (`done_version`, its activity and person ids).

    Queued in the transaction of the change (a rolled-back change logs nothing); the CRM job brings
    the CRM up to `want` and records the ids as the write lands. A row whose versions differ is
    pending: a crash between the remote write and the record loses nothing, and the retried write
    finds the activity it made (by the visit's key) instead of making a second one.
    """

    __tablename__ = "crm_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practice.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointment.id", ondelete="SET NULL"))
    visit_key: Mapped[str] = mapped_column(String(128))
    #: The visit as the CRM should hold it (times, stage, client's name and email): encrypted.
    want: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    want_version: Mapped[int] = mapped_column(Integer, default=0)
    done_version: Mapped[int] = mapped_column(Integer, default=0)
    remote_id: Mapped[str | None] = mapped_column(String(255))
    person_id: Mapped[str | None] = mapped_column(String(255))
    #: pending | done | failed (refused, or retries exhausted; shown by `crm status`)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("connection_id", "visit_key", name="uq_crm_entry_visit"),
        Index("ix_crm_entry_due", "status", "next_attempt_at"),
    )
