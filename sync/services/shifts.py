"""Shift schedules: import a published schedule, map people, set per-assignment flags, publish.

A practice's shift source is a Connection of the `shifts` integration. Its config holds which
person field carries the Microsoft identity (`identity_field`) and each assignment's flags. An
import replaces what the source said about the snapshot's window, in one transaction, and writes
per shift the event it wants in which mailbox (`want_*`). `publish` brings what was written
(`pub_*`) up to that, mailbox by mailbox, through the practice-wide connection's publishing
capability (Graph), recording each write as it lands. So a crash anywhere loses nothing, a re-run
writes only what still differs, and a create retried after a lost answer cannot make a second
event (its transaction id, and the lookup of clinicbot's marked events).

Past shifts are left as they were published. A person whose identity field is emptied (the
scheduler's opt-out) has their future shift events removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
import time as clock
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Table, and_, bindparam, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import NotFound as Gone
from sync.contract import ProviderError, Refused
from sync.contract.shifts import (
    IDENTITY_FIELDS,
    AssignmentFlags,
    MailboxWork,
    PublishOp,
    PublishResult,
    ShiftEvent,
    ShiftPublisher,
    ShiftSnapshot,
    TeamsShiftOp,
)
from sync.integrations import registry
from sync.integrations.providers import connection_info
from sync.runtime.core import Core
from sync.runtime.locks import SyncBusy, connection_lock
from sync.services.errors import Conflict, Invalid, NotFound, ServiceError
from sync.services.practices import practice_by_name
from sync.store import audit
from sync.store.model import Connection, ExternalIdentity, Practice, Practitioner, ShiftRow, utcnow

__all__ = [
    "INTEGRATION",
    "PUBLISH_EVERY_SECONDS",
    "SECOND_WRITER_EVERY_SECONDS",
    "ImportSummary",
    "LastPublish",
    "PublishSummary",
    "SecondWriter",
    "SecondWriterCheck",
    "ShiftTarget",
    "ShiftView",
    "TeamsCheck",
    "assignment_flags",
    "check_people",
    "check_second_writers",
    "check_teams_access",
    "day_bounds",
    "import_schedule",
    "known_assignments",
    "last_publishes",
    "parse_upload",
    "pending_count",
    "person_key",
    "person_overrides",
    "practice_ref",
    "publish",
    "publish_pending_job",
    "replan",
    "second_writer_job",
    "second_writers",
    "set_flags",
    "set_identity_field",
    "set_shift_target",
    "shift_source",
    "shift_target",
    "shifts_between",
    "shifts_in",
    "stored_second_writers",
    "today",
]

log = logging.getLogger("clinicbot.shifts")

INTEGRATION = "shifts"
CATEGORY = "Shift"


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import found and what publishing it will do."""

    source_id: int
    origin: str
    shifts: int
    published: int
    window: tuple[datetime, datetime]
    to_create: int
    to_update: int
    to_delete: int
    unchanged: int
    #: People on published shifts whose identity field is empty (they get nothing: the opt-out).
    unmapped: list[str]
    identity_field: str
    dry_run: bool
    assignments: list[str]


@dataclass(slots=True)
class PublishSummary:
    """What a publish did, per write kind, with who could not be published and why."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    failed: int = 0
    skipped_unmapped: int = 0
    unknown_people: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lookalikes: int = 0
    requests: int = 0
    #: Teams Shifts writes (when the source publishes there), apart from the Outlook ones above.
    teams_ran: bool = False
    teams_created: int = 0
    teams_updated: int = 0
    teams_deleted: int = 0
    teams_failed: int = 0

    @property
    def writes(self) -> int:
        return self.created + self.updated + self.deleted

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created, "updated": self.updated, "deleted": self.deleted, "failed": self.failed,
            "skipped_unmapped": self.skipped_unmapped, "unknown_people": self.unknown_people,
            "errors": self.errors[:20], "lookalikes": self.lookalikes,
        } | ({"teams": {"created": self.teams_created, "updated": self.teams_updated, "deleted": self.teams_deleted,
                        "failed": self.teams_failed}} if self.teams_ran else {})


@dataclass(frozen=True, slots=True)
class ShiftView:
    """A shift as chat shows it."""

    person: str
    assignment: str
    start: datetime
    end: datetime
    practitioner_id: int | None


# --- the source and its settings -------------------------------------------------------------------


async def _practice(session: AsyncSession, practice: str | int | None) -> Practice:
    if isinstance(practice, int):
        found = await session.get(Practice, practice)
        if found is None:
            raise NotFound(f"no practice {practice}")
        return found
    return await practice_by_name(session, practice)


async def _source(session: AsyncSession, practice: Practice, actor: str, *, create: bool) -> Connection | None:
    source = await session.scalar(
        select(Connection).where(Connection.practice_id == practice.id, Connection.provider == INTEGRATION)
        .order_by(Connection.id).limit(1).with_for_update()
    )
    if source is None and create:
        source = Connection(practice_id=practice.id, provider=INTEGRATION, account="schedule files",
                            config={"identity_field": "unique_id", "flags": {}})
        session.add(source)
        await session.flush()
        await audit.record(session, actor=actor, action="connection.add", practice_id=practice.id,
                           details={"connection_id": source.id, "provider": INTEGRATION})
    return source


async def shift_source(session: AsyncSession, practice: str | int | None, actor: str, *,
                       create: bool) -> tuple[Practice, Connection | None]:
    """The practice and its shift-source connection (locked for update; made first when `create`)."""
    row = await _practice(session, practice)
    return row, await _source(session, row, actor, create=create)


def _identity_field(source: Connection) -> str:
    value = (source.config or {}).get("identity_field")
    return value if value in IDENTITY_FIELDS else "unique_id"


def assignment_flags(source_config: dict[str, Any], assignment: str) -> AssignmentFlags:
    """An assignment's flags (the defaults when none were set)."""
    return AssignmentFlags.from_dict(((source_config or {}).get("flags") or {}).get(assignment.casefold()))


async def set_identity_field(core: Core, practice: str | int | None, field_name: str, *, actor: str) -> int:
    """Choose the person field that holds the Microsoft identity; returns the shifts whose target changed."""
    name = field_name.strip().lower().replace("-", "_").replace(" ", "_")
    if name == "uniqueid":
        name = "unique_id"
    if name not in IDENTITY_FIELDS:
        raise Invalid(f"the identity field must be one of {', '.join(IDENTITY_FIELDS)}")
    async with core.store.session() as s:
        row = await _practice(s, practice)
        source = await _source(s, row, actor, create=True)
        assert source is not None
        before = _identity_field(source)
        source.config = {**(source.config or {}), "identity_field": name}
        changed = await _replan(s, row, source)
        await audit.record(s, actor=actor, action="shifts.identity_field", practice_id=row.id,
                           before={"identity_field": before}, after={"identity_field": name},
                           details={"shifts_changed": changed})
    return changed


async def set_flags(core: Core, practice: str | int | None, assignment: str, *, actor: str,
                    send: bool | None = None, notes: bool | None = None, info: bool | None = None,
                    free: bool | None = None) -> tuple[AssignmentFlags, int]:
    """Set an assignment's flags (None: keep); returns the flags and the shifts whose event changes."""
    wanted = assignment.strip()
    if not wanted or len(wanted) > 200:
        raise Invalid("name the assignment as the schedule names it")
    async with core.store.session() as s:
        row = await _practice(s, practice)
        source = await _source(s, row, actor, create=True)
        assert source is not None
        current = assignment_flags(source.config, wanted)
        flags = AssignmentFlags(
            send=current.send if send is None else send, notes=current.notes if notes is None else notes,
            info=current.info if info is None else info, free=current.free if free is None else free,
        )
        all_flags = dict((source.config or {}).get("flags") or {})
        all_flags[wanted.casefold()] = flags.as_dict()
        source.config = {**(source.config or {}), "flags": all_flags}
        changed = await _replan(s, row, source)
        await audit.record(s, actor=actor, action="shifts.flags", practice_id=row.id,
                           before={"assignment": wanted, **current.as_dict()},
                           after={"assignment": wanted, **flags.as_dict()}, details={"shifts_changed": changed})
    return flags, changed


async def known_assignments(core: Core, practice: str | int | None) -> list[tuple[str, AssignmentFlags]]:
    """The assignments seen on the schedule with their flags, for the flags card and the CLI."""
    async with core.store.session() as s:
        row = await _practice(s, practice)
        source = await _source(s, row, "system", create=False)
        if source is None:
            return []
        names = (await s.scalars(select(ShiftRow.assignment).where(ShiftRow.source_id == source.id)
                                 .distinct().order_by(ShiftRow.assignment))).all()
        return [(n, assignment_flags(source.config, n)) for n in names]


# --- wanted state -----------------------------------------------------------------------------------


class _ShiftFields(Protocol):
    """What an event is made of: an ORM row or a plain row with these columns."""

    @property
    def assignment(self) -> str: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...
    @property
    def notes(self) -> str | None: ...


class _States(Protocol):
    """A shift's wanted and published state: an ORM row or a plain row with these columns."""

    @property
    def want_mailbox(self) -> str | None: ...
    @property
    def want_hash(self) -> str | None: ...
    @property
    def pub_mailbox(self) -> str | None: ...
    @property
    def pub_remote_id(self) -> str | None: ...
    @property
    def pub_hash(self) -> str | None: ...


def _event(row: _ShiftFields, flags: AssignmentFlags, zone: ZoneInfo, practice_name: str) -> ShiftEvent:
    lines: list[str] = []
    if flags.info:
        start, end = row.starts_at.astimezone(zone), row.ends_at.astimezone(zone)
        lines.append(f"Assignment: {row.assignment}")
        lines.append(f"{start:%a %d %b %H:%M} - {end:%a %d %b %H:%M} ({zone.key})")
    if flags.notes and row.notes:
        lines.append(f"Schedule notes: {row.notes}")
    lines.append(f"Published by clinicbot from the {practice_name} schedule; changes made here are replaced "
                 "at the next publish.")
    return ShiftEvent(
        subject=row.assignment if flags.info else "Shift",
        start=row.starts_at, end=row.ends_at, show_as="free" if flags.free else "busy",
        body="\n".join(lines), category=CATEGORY,
    )


def _fingerprint(event: ShiftEvent) -> str:
    start, end = event.start.astimezone(UTC).isoformat(), event.end.astimezone(UTC).isoformat()
    text = "\x1f".join([event.subject, start, end, event.show_as,
                        event.body, event.category])
    return hashlib.sha256(text.encode()).hexdigest()


def person_key(name: str) -> str:
    """How a person's name keys an admin's mapping (case and spacing do not matter)."""
    return " ".join(name.split()).casefold()


def person_overrides(source_config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The people an admin mapped by hand: person key -> {"upn": ..., "practitioner_id": ...}."""
    people = (source_config or {}).get("people")
    return {k: v for k, v in people.items() if isinstance(v, dict)} if isinstance(people, dict) else {}


def _mailbox(row: ShiftRow, identity_field: str, overrides: dict[str, dict[str, Any]] | None = None) -> str | None:
    mapped = (overrides or {}).get(person_key(row.person_name or ""))
    value = str((mapped or {}).get("upn") or (row.person_ids or {}).get(identity_field) or "").strip()
    if not value:
        return None
    return value.lower() if "@" in value else value


def _plan_row(row: ShiftRow, source: Connection, practice: Practice, now: datetime) -> None:
    """Set what this shift wants in the calendars. Shifts already over keep what was published."""
    if row.ends_at <= now:
        return
    flags = assignment_flags(source.config, row.assignment)
    mailbox = _mailbox(row, _identity_field(source), person_overrides(source.config))
    if not row.live or not flags.send or mailbox is None:
        row.want_mailbox, row.want_hash = None, None
        return
    row.want_mailbox = mailbox
    row.want_hash = _fingerprint(_event(row, flags, ZoneInfo(practice.timezone), practice.name))


def _set_practitioner(row: ShiftRow, source: Connection, by_identity: dict[str, int]) -> None:
    """Whose shift this is among the practitioners (for their agenda and working hours), past shifts too."""
    overrides = person_overrides(source.config)
    mapped = overrides.get(person_key(row.person_name or ""))
    if mapped and isinstance(mapped.get("practitioner_id"), int):
        row.practitioner_id = mapped["practitioner_id"]
        return
    mailbox = _mailbox(row, _identity_field(source), overrides)
    row.practitioner_id = by_identity.get((mailbox or "").lower()) or row.practitioner_id


async def replan(session: AsyncSession, practice: Practice, source: Connection) -> int:
    """Recompute every future shift's wanted state after a mapping change; returns how many changed."""
    return await _replan(session, practice, source)


async def _replan(session: AsyncSession, practice: Practice, source: Connection) -> int:
    """Recompute every future shift's wanted state; returns how many changed."""
    now = utcnow()
    rows = (await session.scalars(select(ShiftRow).where(ShiftRow.source_id == source.id,
                                                         ShiftRow.ends_at > now))).all()
    changed = 0
    mapping = await _practitioners_by_identity(session, practice.id)
    for row in rows:
        before = (row.want_mailbox, row.want_hash)
        _plan_row(row, source, practice, now)
        _set_practitioner(row, source, mapping)
        changed += (row.want_mailbox, row.want_hash) != before
    return changed


async def _practitioners_by_identity(session: AsyncSession, practice_id: int) -> dict[str, int]:
    """Graph UPN / object id (lower case) and email -> practitioner id, for the practice."""
    out: dict[str, int] = {}
    for pid, email in (await session.execute(
        select(Practitioner.id, Practitioner.email).where(Practitioner.practice_id == practice_id)
    )).all():
        if email:
            out.setdefault(email.lower(), pid)
    for pid, ext in (await session.execute(
        select(ExternalIdentity.practitioner_id, ExternalIdentity.external_id)
        .join(Practitioner, Practitioner.id == ExternalIdentity.practitioner_id)
        .where(Practitioner.practice_id == practice_id, ExternalIdentity.integration == "graph")
    )).all():
        out[ext.lower()] = pid
    return out


# --- import ---------------------------------------------------------------------------------------


async def parse_upload(core: Core, practice: str | int | None, filename: str, data: bytes) -> ShiftSnapshot:
    """Read an uploaded export off the event loop; Invalid naming the row when it is not a schedule."""
    slot = registry.get(INTEGRATION).shift_source
    if slot is None:
        raise Invalid("this build has no shift-schedule reader")
    if len(data) > slot.max_bytes:
        raise Invalid(f"the file is {len(data) // 1024 // 1024} MB; schedule exports up to "
                      f"{slot.max_bytes // 1024 // 1024} MB are read. Export a shorter window.")
    if not any(filename.lower().endswith(ext) for ext in slot.extensions):
        raise Invalid(f"{filename!r} is not a schedule export; send a {' or '.join(slot.extensions)} file")
    async with core.store.session() as s:
        zone = (await _practice(s, practice)).timezone
    try:
        return await asyncio.to_thread(slot.parse_file, filename, data, zone)
    except ProviderError as exc:
        raise Invalid(str(exc)) from None


async def import_schedule(core: Core, practice: str | int | None, snapshot: ShiftSnapshot, *, actor: str,
                          dry_run: bool = False) -> ImportSummary:
    """Make the source's shifts in the snapshot's window exactly the snapshot's, and plan their events."""
    async with core.store.session() as s:
        row = await _practice(s, practice)
        source = await _source(s, row, actor, create=True)
        assert source is not None
        summary = await _apply_snapshot(s, row, source, snapshot, actor, dry_run)
        if dry_run:
            await s.rollback()
    return summary


async def _apply_snapshot(s: AsyncSession, practice: Practice, source: Connection, snapshot: ShiftSnapshot,
                          actor: str, dry_run: bool) -> ImportSummary:
    now = utcnow()
    existing = {r.shift_key: r for r in (await s.scalars(select(ShiftRow).where(ShiftRow.source_id == source.id)))}
    mapping = await _practitioners_by_identity(s, practice.id)
    field_name = _identity_field(source)
    overrides = person_overrides(source.config)
    seen: set[str] = set()
    unmapped: set[str] = set()
    for shift in snapshot.shifts:
        seen.add(shift.key)
        row = existing.get(shift.key)
        if row is None:
            row = ShiftRow(practice_id=practice.id, source_id=source.id, shift_key=shift.key, attempts=0)
            s.add(row)
            existing[shift.key] = row
        if row.ends_at is not None and row.ends_at <= now and row.pub_remote_id is not None:
            continue  # history: what was published for a past shift stays as it was
        ids: dict[str, str] = {f: shift.person.identity(f) for f in IDENTITY_FIELDS if shift.person.identity(f)}
        row.person_name, row.person_ids, row.assignment = shift.person.name, ids, shift.assignment
        row.starts_at, row.ends_at, row.notes, row.live = shift.start, shift.end, shift.notes or None, shift.published
        if shift.published and not ids.get(field_name) and person_key(shift.person.name) not in overrides:
            unmapped.add(shift.person.name)
    for key, row in existing.items():
        if key not in seen and row.starts_at is not None and snapshot.start <= row.starts_at < snapshot.end:
            row.live = False  # removed from the published schedule
    counts = {"create": 0, "update": 0, "delete": 0, "unchanged": 0}
    for row in existing.values():
        _plan_row(row, source, practice, now)
        _set_practitioner(row, source, mapping)
        counts[_pending_kind(row)] += 1
    summary = ImportSummary(
        source_id=source.id, origin=snapshot.origin, shifts=len(snapshot.shifts),
        published=sum(1 for sh in snapshot.shifts if sh.published), window=(snapshot.start, snapshot.end),
        to_create=counts["create"], to_update=counts["update"], to_delete=counts["delete"],
        unchanged=counts["unchanged"], unmapped=sorted(unmapped), identity_field=field_name, dry_run=dry_run,
        assignments=sorted({sh.assignment for sh in snapshot.shifts}),
    )
    if not dry_run:
        source.config = {**(source.config or {}), "last_import": {
            "at": now.isoformat(), "origin": snapshot.origin[:200], "shifts": len(snapshot.shifts),
            "unmapped": len(unmapped),
        }}
        source.last_success_at = now
        await audit.record(s, actor=actor, action="shifts.import", practice_id=practice.id, details={
            "origin": snapshot.origin[:200], "shifts": summary.shifts, "published": summary.published,
            "to_create": summary.to_create, "to_update": summary.to_update, "to_delete": summary.to_delete,
            "unmapped": len(unmapped), "window": [snapshot.start.isoformat(), snapshot.end.isoformat()],
        })
    return summary


def _pending_kind(row: _States) -> str:
    if row.want_hash is None:
        return "delete" if row.pub_remote_id else "unchanged"
    if row.pub_remote_id is None:
        return "create"
    if row.pub_mailbox != row.want_mailbox or row.pub_hash != row.want_hash:
        return "update" if row.pub_mailbox == row.want_mailbox else "create"
    return "unchanged"


# --- publish --------------------------------------------------------------------------------------

async def _open_publisher(core: Core, s: AsyncSession, practice: Practice) -> tuple[ShiftPublisher, int]:
    """The publisher of the practice's practice-wide connection that can publish (Graph application)."""
    conns = (await s.scalars(select(Connection).where(Connection.practice_id == practice.id,
                                                      Connection.status == "active").order_by(Connection.id))).all()
    reasons: list[str] = []
    for conn in conns:
        try:
            integration = registry.get(conn.provider)
        except ProviderError:
            continue
        if integration.publishing is None:
            continue
        try:
            return integration.publishing.open(connection_info(conn, core), core.settings), conn.id
        except Refused as exc:
            reasons.append(str(exc))
    hint = f" ({'; '.join(reasons)})" if reasons else ""
    raise Conflict("no connection can publish shifts: connect Outlook practice-wide first "
                   f"(`clinicbot connection add graph --application --tenant ...`){hint}")


async def check_people(core: Core, practice: str | int | None, refs: Sequence[str]) -> list[str] | None:
    """Which of `refs` (UPNs or object ids) Microsoft 365 does not know.

    None when nothing can ask (no practice-wide Outlook connection yet): the check happens at publish."""
    async with core.store.session() as s:
        row = await _practice(s, practice)
        try:
            publisher, _conn_id = await _open_publisher(core, s, row)
        except Conflict:
            return None
    try:
        return await publisher.unknown_people(list(refs))
    finally:
        await publisher.aclose()


async def publish(core: Core, practice: str | int | None, *, actor: str) -> PublishSummary:
    """Write every pending shift change to its person's calendar; what fails stays pending."""
    async with core.store.session() as s:
        row = await _practice(s, practice)
        source = await _source(s, row, actor, create=False)
        if source is None:
            raise NotFound("no shift schedule has been imported yet: `clinicbot shifts import FILE`")
        practice_id, source_id = row.id, source.id
        source_key = f"clinicbot-shifts-{practice_id}-{source_id}"
        origin = str(((source.config or {}).get("last_import") or {}).get("origin") or "")
        publisher, _conn_id = await _open_publisher(core, s, row)
    summary = PublishSummary()
    try:
        async with connection_lock(core, source_id, wait=30.0):
            await _publish_pending(core, practice_id, source_id, source_key, publisher, summary)
            await _publish_teams(core, practice_id, source_id, source_key, publisher, summary)
            # A row with nothing published anywhere and nothing wanted (a removed shift, deleted) is history no more.
            async with core.store.session() as s:
                # (Kept while a create of it may sit unrecorded in a calendar: the next publish looks there.)
                await s.execute(delete(ShiftRow).where(
                    ShiftRow.source_id == source_id, ShiftRow.live.is_(False), ShiftRow.pub_remote_id.is_(None),
                    ShiftRow.teams_remote_id.is_(None), ShiftRow.want_hash.is_(None),
                    ShiftRow.sent_mailbox.is_(None)))
    except SyncBusy:
        raise Conflict("another publish of this schedule is running; try again in a minute") from None
    finally:
        await publisher.aclose()
        summary.requests = getattr(publisher, "requests", 0)
    async with core.store.session() as s:
        source_row = await s.get(Connection, source_id, with_for_update=True)  # config: read-modify-write
        if source_row is not None:
            source_row.config = {**(source_row.config or {}), "last_publish": {
                "at": utcnow().isoformat(), "by": actor, "origin": origin[:200], **summary.as_dict()}}
        await audit.record(s, actor=actor, action="shifts.publish", practice_id=practice_id,
                           details={"origin": origin[:200], **summary.as_dict()})
    return summary


@dataclass(slots=True)
class _Planned:
    """A pending shift as publishing reads it: one row's wanted and published state."""

    row_id: int
    key: str
    want_mailbox: str | None
    want_hash: str | None
    pub_mailbox: str | None
    pub_remote_id: str | None
    attempts: int
    #: The row's event fields; its event is made when its mailbox is handed to the writer.
    fields: _ShiftFields | None
    event: ShiftEvent | None = None


class _EventMaker:
    """A wanted shift's event, with the assignment flags looked up once per assignment."""

    def __init__(self, config: dict[str, Any], zone: ZoneInfo, practice_name: str) -> None:
        self.config, self.zone, self.practice_name = config, zone, practice_name
        self.flags: dict[str, AssignmentFlags] = {}

    def __call__(self, fields: _ShiftFields) -> ShiftEvent:
        flags = self.flags.get(fields.assignment)
        if flags is None:
            flags = self.flags[fields.assignment] = assignment_flags(self.config, fields.assignment)
        return _event(fields, flags, self.zone, self.practice_name)


#: The columns publishing reads (plain rows through Core: no ORM objects for thousands of shifts).
_PLAN_COLUMNS = (ShiftRow.id, ShiftRow.shift_key, ShiftRow.want_mailbox, ShiftRow.want_hash, ShiftRow.pub_mailbox,
                 ShiftRow.pub_remote_id, ShiftRow.pub_hash, ShiftRow.attempts, ShiftRow.assignment,
                 ShiftRow.starts_at, ShiftRow.ends_at, ShiftRow.notes)
#: _pending_kind(row) != "unchanged", as SQL: something to delete, to create, or that differs.
_PENDING = or_(
    and_(ShiftRow.want_hash.is_(None), ShiftRow.pub_remote_id.is_not(None)),
    and_(ShiftRow.want_hash.is_not(None), or_(
        ShiftRow.pub_remote_id.is_(None),
        ShiftRow.pub_mailbox.is_distinct_from(ShiftRow.want_mailbox),
        ShiftRow.pub_hash.is_distinct_from(ShiftRow.want_hash),
    )),
)
#: Mailboxes checked against the directory at once (one $batch), then handed to the writer.
_DIRECTORY_CHUNK = 20
#: How long landed results gather before they are written down (one transaction). Each database call
#: hands the GIL to the driver's thread and stalls the event loop for a few ms (the interpreter's
#: switch interval), so few larger transactions keep the writer's batches moving.
_RECORD_EVERY = 0.5


async def _publish_pending(core: Core, practice_id: int, source_id: int, source_key: str,
                           publisher: ShiftPublisher, summary: PublishSummary) -> None:
    fed = asyncio.Event()
    # Sign in while the plan loads: the directory check and the first writes need the token.
    warm = asyncio.ensure_future(publisher.warm())

    async def count_unmapped() -> int:
        await fed.wait()  # (once every write is out: the start of a publish is the busy part)
        return await _count_unmapped(core, source_id)

    unmapped = asyncio.ensure_future(count_unmapped())
    try:
        plan, maker, suspects = await _load_plan(core, practice_id, source_id)
        if plan or suspects:
            await _publish_all(core, source_key, plan, maker, publisher, summary, fed, suspects, source_id)
    finally:
        fed.set()
        await warm
        summary.skipped_unmapped = await unmapped


async def _count_unmapped(core: Core, source_id: int) -> int:
    """Live future shifts of people without the identity field (the summary's "skipped unmapped")."""
    async with core.store.session() as s:
        source = await s.get(Connection, source_id)
        assert source is not None
        field_name, overrides = _identity_field(source), person_overrides(source.config)
        live_ids = (await s.execute(select(ShiftRow.person_name, ShiftRow.person_ids).where(
            ShiftRow.source_id == source_id, ShiftRow.live.is_(True), ShiftRow.ends_at > utcnow()))).all()
    return sum(1 for name, ids in live_ids if not str((ids or {}).get(field_name) or "").strip()
               and person_key(name or "") not in overrides)


@dataclass(frozen=True, slots=True)
class _Suspect:
    """A shift whose Outlook create went to `mailbox` and whose answer is not recorded (its sent mark)."""

    row_id: int
    key: str
    mailbox: str
    starts_at: datetime
    ends_at: datetime


#: The rows an Outlook create is sent for: wanted, and not yet in the wanted mailbox.
_CREATING = and_(ShiftRow.want_hash.is_not(None), ShiftRow.want_mailbox.is_not(None),
                 or_(ShiftRow.pub_remote_id.is_(None), ShiftRow.pub_mailbox.is_distinct_from(ShiftRow.want_mailbox)))


async def _load_plan(core: Core, practice_id: int, source_id: int
                     ) -> tuple[list[_Planned], _EventMaker, list[_Suspect]]:
    """The pending shifts, their attempts counted (committed before any write), their events' maker,
    and the shifts an earlier publish sent a create for without recording its answer."""
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        source = await s.get(Connection, source_id)
        assert practice is not None and source is not None
        outlook = _target_of(source.config).outlook
        # Read before this publish marks its own creates: where earlier ones may sit unrecorded.
        suspects = [_Suspect(r.id, r.shift_key, r.sent_mailbox, r.starts_at, r.ends_at)
                    for r in (await s.execute(select(
                        ShiftRow.id, ShiftRow.shift_key, ShiftRow.sent_mailbox, ShiftRow.starts_at, ShiftRow.ends_at,
                    ).where(ShiftRow.source_id == source_id, ShiftRow.sent_mailbox.is_not(None)))).all()]
        # One statement counts the attempt of every pending shift, marks where each create goes, and
        # reads them back, committed before any write: a crash leaves the trace that a create may have
        # landed, and where. Outlook left as a target: what was published there goes (nothing is wanted
        # there any more).
        values: dict[str, Any] = {"attempts": ShiftRow.attempts + 1}
        if outlook:
            values["sent_mailbox"] = case((_CREATING, ShiftRow.want_mailbox), else_=ShiftRow.sent_mailbox)
        rows = (await s.execute(
            update(ShiftRow).where(ShiftRow.source_id == source_id,
                                   _PENDING if outlook else ShiftRow.pub_remote_id.is_not(None))
            .values(values).returning(*_PLAN_COLUMNS)
            .execution_options(synchronize_session=False)
        )).all()
        maker = _EventMaker(dict(source.config or {}), ZoneInfo(practice.timezone), practice.name)
    plan: list[_Planned] = []
    for r in rows:
        if not outlook:
            plan.append(_Planned(r.id, r.shift_key, None, None, r.pub_mailbox, r.pub_remote_id, r.attempts, None))
        elif _pending_kind(r) != "unchanged":  # (the statement's filter is _pending_kind's: all are pending)
            plan.append(_Planned(r.id, r.shift_key, r.want_mailbox, r.want_hash, r.pub_mailbox, r.pub_remote_id,
                                 r.attempts, r if r.want_hash is not None else None))
    return plan, maker, suspects


def _txid(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:36]


_Work = tuple[str, _Planned]  # (create|update|delete, the shift)


@dataclass(frozen=True, slots=True)
class TeamsCheck:
    """Whether the app can publish to the team's Teams Shifts schedule, for `doctor`.

    `ok`: True, False (publishing there fails until someone acts: `fix` says exactly what), or None
    (a note: nothing to check yet, or the check could not run)."""

    ok: bool | None
    words: str
    fix: str = ""


def _grant_words(app_id: str, tenant_id: str) -> str:
    app = app_id or "clinicbot's app registration (CLINICBOT_GRAPH_CLIENT_ID)"
    return (f"in the Entra admin center, App registrations > {app} > API permissions > Add a permission > "
            "Microsoft Graph > Application permissions > Schedule.ReadWrite.All, then Grant admin consent"
            + (f" for tenant {tenant_id}" if tenant_id else "") + " (Schedule.Read.All is not enough; "
            "a delegated permission does not count)")


async def check_teams_access(core: Core, practice: str | int | None) -> TeamsCheck | None:
    """Can the practice-wide connection publish to the team's Shifts schedule? None: Teams is not a target.

    Reads the team's schedule acting as the configured owner (writing nothing) and names what is
    missing: the Schedule.ReadWrite.All application permission, or an owner Graph accepts. A read
    proves Schedule.Read.All at least; the last publish's answer from Teams tells the rest."""
    async with core.store.session() as s:
        row = await _practice(s, practice)
        source = await s.scalar(select(Connection).where(Connection.practice_id == row.id,
                                                         Connection.provider == INTEGRATION)
                                .order_by(Connection.id).limit(1))
        where = _target_of(source.config if source is not None else None)
        if source is None or not where.teams:
            return None
        last = (source.config or {}).get("last_publish")
        try:
            publisher, _conn_id = await _open_publisher(core, s, row)
        except Conflict as exc:
            return TeamsCheck(False, "Teams Shifts is a target, but no connection can publish", str(exc))
    team, owner = where.team_id, where.acts_as
    change_owner = f"`clinicbot shifts target teams team {team} as <a team owner's UPN>`"
    try:
        acting: str | None = owner
        if not _GUID.match(owner):
            acting = (await publisher.user_ids([owner])).get(owner)
        if acting is None:
            return TeamsCheck(False, f"Teams Shifts acts as {owner}, whom Microsoft 365 does not know",
                              f"name an owner of team {team}: {change_owner}")
        found = await publisher.teams_access(team, acting)
    except ProviderError as exc:
        return TeamsCheck(None, f"Teams Shifts: the check could not run ({exc})", "run `clinicbot doctor` again")
    finally:
        await publisher.aclose()
    grant = _grant_words(found.app_id, found.tenant_id)
    if found.outcome == "no_role":
        return TeamsCheck(False, f"Teams Shifts: the app may not use team {team}'s schedule ({found.detail})", grant)
    if found.outcome == "refused":
        return TeamsCheck(False, f"Teams Shifts: Graph refuses team {team}'s schedule acting as {owner} "
                          f"({found.detail})",
                          f"make {owner} an owner of the team in Teams, or name one: {change_owner}; if the "
                          f"permission is missing instead: {grant}")
    errors = last.get("errors") if isinstance(last, dict) else None
    refused = [str(e) for e in errors if str(e).startswith("Teams Shifts") and "HTTP 403" in str(e)] \
        if isinstance(errors, list) else []
    if refused:
        return TeamsCheck(False, f"Teams Shifts: team {team}'s schedule reads, but the last publish was refused "
                          f"({refused[-1][:200]})", f"{grant}; then `clinicbot shifts publish`")
    if found.outcome == "no_schedule":
        return TeamsCheck(None, f"Teams Shifts: team {team} has no Shifts schedule yet ({found.detail}); the "
                          "next publish creates it", "if that publish says the team is not found, check the team "
                          "id (the team's groupId)")
    return TeamsCheck(True, f"Teams Shifts: team {team}'s schedule reads acting as {owner}"
                      + ("" if found.enabled else " (not enabled yet: the next publish enables it)"))


#: The shift key of a delete of an orphan (a marked Outlook event or Teams shift no row records).
_ORPHAN = "orphan:"
#: How far around the shifts it suspects a publish looks for Outlook events it made but never recorded.
_OUTLOOK_LOOK_AROUND = timedelta(days=7)


async def _publish_all(core: Core, source_key: str, plan: list[_Planned], maker: _EventMaker,
                       publisher: ShiftPublisher, summary: PublishSummary, fed: asyncio.Event,
                       suspects: Sequence[_Suspect] = (), source_id: int | None = None) -> None:
    """Write the plan, mailbox by mailbox as each is checked, recording results as they land.

    A calendar where an earlier create may sit unrecorded (its answer lost, or the process stopped
    before recording it) is looked at first for clinicbot's own marked events: a create of a shift
    found there becomes an update of that event, and a marked event no shift records (its shift
    re-keyed or removed since) is deleted, when it lies around the suspected shifts and is not over.
    """
    by_mailbox: dict[str, list[_Work]] = {}
    wanted: set[str] = set()
    for item in plan:
        if item.pub_remote_id and item.pub_mailbox and (item.want_hash is None
                                                        or item.pub_mailbox != item.want_mailbox):
            by_mailbox.setdefault(item.pub_mailbox, []).append(("delete", item))
        if item.want_hash is not None and item.want_mailbox:
            kind = "update" if item.pub_remote_id and item.pub_mailbox == item.want_mailbox else "create"
            by_mailbox.setdefault(item.want_mailbox, []).append((kind, item))
            wanted.add(item.want_mailbox)
    # Where to look, and around which times: the sent marks of earlier publishes, and creates tried before.
    suspected: dict[str, list[tuple[datetime, datetime]]] = {}
    for sus in suspects:
        suspected.setdefault(sus.mailbox, []).append((sus.starts_at, sus.ends_at))
    for mailbox, work in by_mailbox.items():
        for kind, item in work:
            if kind == "create" and item.attempts > 1 and item.fields is not None:
                suspected.setdefault(mailbox, []).append((item.fields.starts_at, item.fields.ends_at))
    creating = {item.row_id for work in by_mailbox.values() for kind, item in work if kind == "create"}
    recorded = await _recorded_events(core, source_id) if suspected and source_id is not None else set()
    recorder = _Recorder(core, summary)
    #: (mailbox, shift key) -> the shift, for the results as they land.
    planned: dict[tuple[str, str], _Planned] = {}
    sent: dict[str, list[PublishOp]] = {}
    unknown: set[str] = set()
    #: Suspected calendars looked through (or unknown to the directory: no calendar), and those where
    #: deleting an orphan failed: the sent marks of the first, less the second, are cleared at the end.
    looked: set[str] = set()
    orphans_failed: set[str] = set()
    mailboxes = sorted(set(by_mailbox) | set(suspected))
    chunks = [mailboxes[i:i + _DIRECTORY_CHUNK] for i in range(0, len(mailboxes), _DIRECTORY_CHUNK)]
    # The directory is asked about every chunk at once (its answers queue on one gate); the writer
    # starts with the first chunk's mailboxes while later answers and ops are still being made.
    checks = [asyncio.ensure_future(publisher.unknown_people([m for m in c if m in wanted or m in suspected]))
              for c in chunks]

    async def own(mailbox: str) -> tuple[dict[str, str], list[str]]:
        """clinicbot's own events in a suspected calendar: shift key -> the event a create adopts, and
        the orphans to delete. Only events carrying this source's mark are seen, so no other is touched."""
        try:
            found = await publisher.own_events(mailbox, source_key)
        except ProviderError as exc:
            work = by_mailbox.pop(mailbox, [])
            summary.failed += len(work)
            summary.errors.append(f"{mailbox}: {exc}")
            await _record_failure(core, [w[1].row_id for w in work], str(exc))
            return {}, []
        to_create = {item.key for kind, item in by_mailbox.get(mailbox, []) if kind == "create"}
        spans = suspected[mailbox]
        low = min(a for a, _b in spans) - _OUTLOOK_LOOK_AROUND
        high = max(b for _a, b in spans) + _OUTLOOK_LOOK_AROUND
        now = utcnow()
        adopt: dict[str, str] = {}
        orphans: list[str] = []
        for event in sorted(found, key=lambda e: e.remote_id):
            if event.remote_id in recorded:
                continue  # a shift records it (its update or delete, if any, is in the plan)
            if event.shift_key in to_create and event.shift_key not in adopt:
                adopt[event.shift_key] = event.remote_id
            elif event.start is not None and event.end is not None and now < event.end \
                    and event.start < high and event.end > low:
                orphans.append(event.remote_id)  # (a second one of a shift, too: the calendar shows it once)
        looked.add(mailbox)
        return adopt, orphans

    streamed: set[str] = set()

    async def stream() -> AsyncIterator[MailboxWork]:
        for chunk, check in zip(chunks, checks, strict=True):
            unknown.update(await check)
            # A calendar the directory does not know holds nothing to find (nor gets a create).
            looked.update(mb for mb in chunk if mb in suspected and mb in unknown)
            suspect = [mb for mb in chunk if mb in suspected and mb not in unknown]
            found = dict(zip(suspect, await asyncio.gather(*(own(mb) for mb in suspect)), strict=True))
            for mailbox in chunk:
                streamed.add(mailbox)
                for _kind, item in by_mailbox.get(mailbox, []):
                    if item.fields is not None and item.event is None:
                        item.event = maker(item.fields)
                adopt, orphans = found.get(mailbox, ({}, []))
                ops = _ops(source_key, mailbox, by_mailbox.get(mailbox, []), unknown, adopt)
                for op, (_kind, item) in ops:
                    planned[(mailbox, op.shift_key)] = item
                batch = [op for op, _w in ops]
                batch += [PublishOp(kind="delete", shift_key=f"{_ORPHAN}{rid}", remote_id=rid) for rid in orphans]
                if batch:
                    sent[mailbox] = batch
                    yield mailbox, batch
        fed.set()

    redo: dict[str, list[PublishOp]] = {}

    def landed(mailbox: str, result: PublishResult) -> None:
        if result.shift_key.startswith(_ORPHAN):
            if result.error is None:
                summary.deleted += 1
            else:
                summary.failed += 1
                summary.errors.append(f"{mailbox} {result.shift_key}: {result.error}")
                orphans_failed.add(mailbox)
            return
        item = planned[(mailbox, result.shift_key)]
        if result.kind == "update" and isinstance(result.error, Gone) and item.event is not None:
            # An update of an event deleted by hand in the calendar: publish the shift again.
            redo.setdefault(mailbox, []).append(PublishOp(
                kind="create", shift_key=item.key, event=item.event,
                transaction_id=_txid(source_key, item.key, mailbox, result.remote_id or "")))
            return
        recorder.add(mailbox, item, result)

    recorder.start()
    try:
        try:
            await publisher.write(source_key, stream(), landed)
            if redo:
                await publisher.write(source_key, dict(redo), landed)
        finally:
            for check in checks:
                check.cancel()
            await asyncio.gather(*checks, return_exceptions=True)
    except ProviderError as exc:
        # What landed is recorded; every other op of this publish failed with the error.
        missing = [planned[(mb, op.shift_key)].row_id for mb, ops in sent.items() for op in ops
                   if not op.shift_key.startswith(_ORPHAN) and not recorder.has(mb, op.shift_key, op.kind)]
        missing += [it.row_id for mb, work in by_mailbox.items() if mb not in streamed for _k, it in work]
        summary.failed += len(missing)
        summary.errors.append(str(exc))
        await recorder.close()
        await _record_failure(core, missing, str(exc))
        return
    finally:
        await recorder.close()
    summary.unknown_people = sorted(unknown & wanted)
    # A suspected calendar put right: the sent marks of shifts not created there now are done with (a
    # shift created there now clears its own when the create is recorded).
    done = [{"b_id": sus.row_id, "b_mailbox": sus.mailbox} for sus in suspects
            if sus.mailbox in looked and sus.mailbox not in orphans_failed and sus.row_id not in creating]
    if done:
        table = ShiftRow.__table__
        assert isinstance(table, Table)
        async with core.store.session() as s:
            await s.execute(update(table).where(table.c.id == bindparam("b_id"),
                                                table.c.sent_mailbox == bindparam("b_mailbox"))
                            .values(sent_mailbox=None), done)


async def _recorded_events(core: Core, source_id: int) -> set[str]:
    """The Outlook events the source's shifts record (never orphans, whatever a calendar says)."""
    async with core.store.session() as s:
        return {rid for rid in (await s.scalars(select(ShiftRow.pub_remote_id).where(
            ShiftRow.source_id == source_id, ShiftRow.pub_remote_id.is_not(None)))).all() if rid}


def _ops(source_key: str, mailbox: str, work: list[_Work], unknown: set[str],
         found: dict[str, str]) -> list[tuple[PublishOp, _Work]]:
    """One mailbox's writes: a create becomes an update of the event an earlier run already made."""
    out: list[tuple[PublishOp, _Work]] = []
    for entry in work:
        kind, item = entry
        if kind == "delete":
            out.append((PublishOp(kind="delete", shift_key=item.key, remote_id=item.pub_remote_id), entry))
        elif mailbox in unknown:
            continue  # the directory does not know the person: nothing is written, the shift stays pending
        elif kind == "update":
            out.append((PublishOp(kind="update", shift_key=item.key, event=item.event,
                                  remote_id=item.pub_remote_id), entry))
        elif item.key in found:
            out.append((PublishOp(kind="update", shift_key=item.key, event=item.event,
                                  remote_id=found[item.key]), entry))
        else:
            out.append((PublishOp(kind="create", shift_key=item.key, event=item.event,
                                  transaction_id=_txid(source_key, item.key, mailbox)), entry))
    return out


class _Recorder:
    """Writes each op's outcome down shortly after it lands, while later writes are in flight.

    Outcomes gather for _RECORD_EVERY seconds and go in one transaction (bulk updates by primary
    key through Core). A row's fields accumulate over the publish, so a move (a delete in the old
    mailbox, a create in the new) is recorded right whichever lands first.
    """

    def __init__(self, core: Core, summary: PublishSummary) -> None:
        self.core = core
        self.summary = summary
        self.changes: dict[int, dict[str, Any]] = {}
        self.dirty: set[int] = set()
        self.done: set[tuple[str, str, str]] = set()
        self.wake = asyncio.Event()
        self.closed = asyncio.Event()
        self.closing = False
        self.task: asyncio.Future[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    def has(self, mailbox: str, key: str, kind: str) -> bool:
        return (mailbox, key, kind) in self.done

    def add(self, mailbox: str, item: _Planned, result: PublishResult) -> None:
        if self.task is not None and self.task.done():
            self.task.result()  # recording failed: stop writing what could not be recorded
        self.done.add((mailbox, result.shift_key, result.kind))
        change = self.changes.setdefault(item.row_id, {"b_id": item.row_id})
        self.dirty.add(item.row_id)
        self.wake.set()
        if result.error is not None:
            self.summary.failed += 1
            self.summary.errors.append(f"{result.shift_key}: {result.error}")
            change["last_error"] = str(result.error)[:500]
            return
        if result.kind == "delete":
            self.summary.deleted += 1
            # The old mailbox's copy is gone; a create in the new mailbox (same row) may follow or precede.
            if item.pub_mailbox == mailbox and "pub_remote_id" not in change:
                change.update(pub_mailbox=None, pub_remote_id=None, pub_hash=None)
        else:
            self.summary.created += result.kind == "create"
            self.summary.updated += result.kind == "update"
            change.update(pub_mailbox=mailbox, pub_remote_id=result.remote_id, pub_hash=item.want_hash)
            if mailbox == item.want_mailbox and (item.pub_remote_id is None or item.pub_mailbox != mailbox):
                change["sent_mailbox"] = None  # the create this publish marked is recorded
        if "last_error" not in change:
            change.update(attempts=0, last_error=None)

    async def _run(self) -> None:
        while not self.closing or self.dirty:
            if not self.dirty:
                self.wake.clear()
                await self.wake.wait()
                continue
            if not self.closing:
                with contextlib.suppress(TimeoutError):  # gather for a while, unless closing
                    await asyncio.wait_for(self.closed.wait(), _RECORD_EVERY)
            await self._flush()

    async def _flush(self) -> None:
        rows, self.dirty = [dict(self.changes[i]) for i in sorted(self.dirty)], set()
        await _bulk_update(self.core, rows)

    async def close(self) -> None:
        if self.task is None:
            return
        self.closing = True
        self.closed.set()
        self.wake.set()
        task, self.task = self.task, None
        await task


async def _record_failure(core: Core, row_ids: list[int], message: str) -> None:
    async with core.store.session() as s:
        for chunk in range(0, len(row_ids), 500):
            await s.execute(update(ShiftRow).where(ShiftRow.id.in_(row_ids[chunk:chunk + 500]))
                            .values(last_error=message[:500]))


# --- Microsoft Teams Shifts --------------------------------------------------------------------------

#: Where a source's shifts go: people's Outlook calendars, a team's Teams Shifts schedule, or both.
TARGETS = ("outlook", "teams", "both")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

#: teams_pending(row), as SQL: a Teams shift to delete, to create, or that differs from the wanted one.
_TEAMS_PENDING = or_(
    and_(ShiftRow.want_hash.is_(None), ShiftRow.teams_remote_id.is_not(None)),
    and_(ShiftRow.want_hash.is_not(None), or_(
        ShiftRow.teams_remote_id.is_(None),
        ShiftRow.teams_mailbox.is_distinct_from(ShiftRow.want_mailbox),
        ShiftRow.teams_hash.is_distinct_from(ShiftRow.want_hash),
    )),
)


@dataclass(frozen=True, slots=True)
class ShiftTarget:
    """Where a practice's shifts are published, for chat, the CLI and the audit."""

    target: str
    team_id: str
    acts_as: str

    @property
    def outlook(self) -> bool:
        return self.target in ("outlook", "both")

    @property
    def teams(self) -> bool:
        return self.target in ("teams", "both")

    def sentence(self) -> str:
        where = {"outlook": "each person's Outlook calendar",
                 "teams": "the team's Teams Shifts schedule",
                 "both": "each person's Outlook calendar and the team's Teams Shifts schedule"}[self.target]
        team = f" (team {self.team_id}, acting as {self.acts_as})" if self.team_id else ""
        return f"Shifts are published to {where}{team}."

    def as_dict(self) -> dict[str, str]:
        return {"target": self.target, "team_id": self.team_id, "acts_as": self.acts_as}


def _target_of(config: dict[str, Any] | None) -> ShiftTarget:
    doc = (config or {}).get("target") or {}
    doc = doc if isinstance(doc, dict) else {}
    target = doc.get("target") if doc.get("target") in TARGETS else "outlook"
    return ShiftTarget(str(target), str(doc.get("team_id") or ""), str(doc.get("acts_as") or ""))


async def shift_target(core: Core, practice: str | int | None) -> ShiftTarget:
    """Where the practice's shifts are published (Outlook when never set)."""
    async with core.store.session() as s:
        row = await _practice(s, practice)
        source = await s.scalar(select(Connection).where(Connection.practice_id == row.id,
                                                         Connection.provider == INTEGRATION)
                                .order_by(Connection.id).limit(1))
        return _target_of(source.config if source is not None else None)


async def set_shift_target(core: Core, practice: str | int | None, target: str, *, actor: str,
                           team_id: str | None = None, acts_as: str | None = None) -> tuple[ShiftTarget, ShiftTarget]:
    """Choose Outlook, Teams Shifts or both (audited); returns (before, after).

    Teams needs the team (its group id) and who the app acts as (a team owner's UPN or object id),
    given now or kept from before. Leaving a target removes what was published there at the next publish."""
    target = target.strip().lower()
    if target not in TARGETS:
        raise Invalid(f"{target!r} is not a target; say outlook, teams or both")
    if team_id is not None and not _GUID.match(team_id.strip()):
        raise Invalid(f"{team_id!r} is not a team id: the team's group id, a GUID (Teams: the team's "
                      "'Get link to team' holds it as groupId)")
    if acts_as is not None:
        acts_as = acts_as.strip().lower()
        if not (_GUID.match(acts_as) or ("@" in acts_as and not any(c.isspace() for c in acts_as)
                                         and len(acts_as) <= 320)):
            raise Invalid(f"{acts_as!r} is not a UPN or an Entra object id of a team owner")
    async with core.store.session() as s:
        row = await _practice(s, practice)
        source = await _source(s, row, actor, create=True)
        assert source is not None
        before = _target_of(source.config)
        after = ShiftTarget(target, (team_id or before.team_id).strip().lower(), acts_as or before.acts_as)
        if after.teams and not (after.team_id and after.acts_as):
            raise Invalid("say which team and who the app acts as: "
                          "`shift-target teams team <team id> as <owner UPN>`")
        source.config = {**(source.config or {}), "target": after.as_dict()}
        await audit.record(s, actor=actor, action="shifts.target", practice_id=row.id,
                           before=before.as_dict(), after=after.as_dict())
    return before, after


#: How far around the shifts being created a publish looks for Teams shifts it made but never recorded.
_TEAMS_LOOK_AROUND = timedelta(days=7)


def _teams_marker(source_key: str, shift_key: str) -> str:
    """The marker ending a Teams shift's notes: clinicbot's, for this source and shift (24 hex)."""
    return hashlib.sha256(f"{source_key}\x1f{shift_key}".encode()).hexdigest()[:24]


_TEAMS_COLUMNS = (ShiftRow.id, ShiftRow.shift_key, ShiftRow.want_mailbox, ShiftRow.want_hash, ShiftRow.teams_mailbox,
                  ShiftRow.teams_remote_id, ShiftRow.assignment, ShiftRow.starts_at, ShiftRow.ends_at, ShiftRow.notes)


async def _publish_teams(core: Core, practice_id: int, source_id: int, source_key: str,
                         publisher: ShiftPublisher, summary: PublishSummary) -> None:
    """Bring the team's Teams Shifts schedule up to the wanted shifts (or empty it when Teams was left)."""
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        source = await s.get(Connection, source_id)
        assert practice is not None and source is not None
        where = _target_of(source.config)
        config, zone_name, practice_name = dict(source.config or {}), practice.timezone, practice.name
        if not where.team_id:
            return
        rows = (await s.execute(select(*_TEAMS_COLUMNS).where(
            ShiftRow.source_id == source_id,
            _TEAMS_PENDING if where.teams else ShiftRow.teams_remote_id.is_not(None)))).all()
    if not rows:
        return
    summary.teams_ran = True
    zone = ZoneInfo(zone_name)
    wanted_mailboxes = sorted({r.want_mailbox for r in rows if where.teams and r.want_hash and r.want_mailbox})
    try:
        refs = [*wanted_mailboxes, *([] if _GUID.match(where.acts_as) else [where.acts_as])]
        ids = await publisher.user_ids(refs) if refs else {}
        acting = where.acts_as if _GUID.match(where.acts_as) else ids.get(where.acts_as)
        if acting is None:
            raise Refused(f"Teams Shifts: the directory does not know {where.acts_as!r}, who the app acts as")
        target = await publisher.teams_ready(where.team_id, acting, zone_name,
                                             [ids[m] for m in wanted_mailboxes if m in ids])
        ops: list[TeamsShiftOp] = []
        by_key: dict[str, Any] = {}
        creates: list[TeamsShiftOp] = []
        for r in rows:
            by_key[r.shift_key] = r
            mark = _teams_marker(source_key, r.shift_key)
            if not where.teams or r.want_hash is None or not r.want_mailbox:
                ops.append(TeamsShiftOp(kind="delete", shift_key=r.shift_key, remote_id=r.teams_remote_id))
                continue
            user = ids.get(r.want_mailbox)
            if user is None:
                continue  # unknown to the directory: listed with the unknown people, stays pending
            event = _event(r, assignment_flags(config, r.assignment), zone, practice_name)
            op = TeamsShiftOp(kind="update" if r.teams_remote_id else "create", shift_key=r.shift_key,
                              user_id=user, event=event, remote_id=r.teams_remote_id, marker=mark)
            (creates if op.kind == "create" else ops).append(op)
        if creates:
            # A create whose answer was lost left a shift with our marker: replace it instead. The look
            # spans a week either side of the shifts to create, for one moved since that create.
            found = await publisher.teams_marked(
                target, min(o.event.start for o in creates if o.event) - _TEAMS_LOOK_AROUND,
                max(o.event.end for o in creates if o.event) + _TEAMS_LOOK_AROUND)
            ops += [replace(o, kind="update", remote_id=found[o.marker]) if o.marker in found else o for o in creates]
            # A marked shift no row records (its shift moved to another id, or was removed, before the
            # lost create was recorded) is this source's orphan: delete it.
            async with core.store.session() as s:
                recorded = set((await s.scalars(select(ShiftRow.teams_remote_id).where(
                    ShiftRow.source_id == source_id, ShiftRow.teams_remote_id.is_not(None)))).all())
            adopting = {o.marker for o in creates}
            ops += [TeamsShiftOp(kind="delete", shift_key=f"{_ORPHAN}{shift_id}", remote_id=shift_id)
                    for mark, shift_id in sorted(found.items()) if mark not in adopting and shift_id not in recorded]
        results = await publisher.teams_write(target, ops)
    except ProviderError as exc:
        summary.teams_failed += len(rows)
        summary.errors.append(f"Teams Shifts: {exc}")
        await _record_failure(core, [r.id for r in rows], f"Teams Shifts: {exc}")
        return
    changes: list[dict[str, Any]] = []
    for result in results:
        if result.shift_key.startswith(_ORPHAN):
            summary.teams_deleted += result.error is None
            summary.teams_failed += result.error is not None
            if result.error is not None:
                summary.errors.append(f"Teams Shifts {result.shift_key}: {result.error}")
            continue
        r = by_key[result.shift_key]
        if result.error is not None:
            summary.teams_failed += 1
            summary.errors.append(f"Teams Shifts {result.shift_key}: {result.error}")
            changes.append({"b_id": r.id, "last_error": f"Teams Shifts: {result.error}"[:500]})
        elif result.kind == "delete":
            summary.teams_deleted += 1
            changes.append({"b_id": r.id, "teams_mailbox": None, "teams_remote_id": None, "teams_hash": None})
        else:
            summary.teams_created += result.kind == "create"
            summary.teams_updated += result.kind == "update"
            changes.append({"b_id": r.id, "teams_mailbox": r.want_mailbox, "teams_remote_id": result.remote_id,
                            "teams_hash": r.want_hash})
    await _bulk_update(core, changes)


async def _bulk_update(core: Core, rows: list[dict[str, Any]]) -> None:
    """Update shift rows by primary key ("b_id"), one executemany per shape of row, in one transaction."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(tuple(sorted(row)), []).append(row)
    table = ShiftRow.__table__
    assert isinstance(table, Table)
    async with core.store.session() as s:
        for keys, group in shapes.items():
            stmt = update(table).where(table.c.id == bindparam("b_id")).values(
                {k: bindparam(k) for k in keys if k != "b_id"})
            await s.execute(stmt, group)


# --- reading ----------------------------------------------------------------------------------------


async def shifts_between(core: Core, practice_id: int, start: datetime, end: datetime,
                         practitioner_id: int | None = None) -> list[ShiftView]:
    """Published shifts overlapping [start, end), earliest first (who is on)."""
    async with core.store.session() as s:
        return await shifts_in(s, practice_id, start, end, practitioner_id)


async def shifts_in(session: AsyncSession, practice_id: int, start: datetime, end: datetime,
                    practitioner_id: int | None = None) -> list[ShiftView]:
    """`shifts_between` in `session`: an agenda reads them in its own transaction
    (sync.services.appointment_views.load_agenda)."""
    rows = (await session.scalars(_shifts_select(practitioner_id is not None), {
        "practice_id": practice_id, "practitioner_id": practitioner_id, "start": start, "end": end})).all()
    return [ShiftView(r.person_name, r.assignment, r.starts_at, r.ends_at, r.practitioner_id) for r in rows]


@functools.cache
def _shifts_select(by_practitioner: bool) -> Select[ShiftRow]:
    """`shifts_in`'s statement, built once (bound parameters practice_id, practitioner_id, start,
    end): an agenda runs it on every request."""
    query = select(ShiftRow).where(ShiftRow.practice_id == bindparam("practice_id"), ShiftRow.live.is_(True),
                                   ShiftRow.starts_at < bindparam("end"), ShiftRow.ends_at > bindparam("start"))
    if by_practitioner:
        query = query.where(ShiftRow.practitioner_id == bindparam("practitioner_id"))
    return query.order_by(ShiftRow.starts_at, ShiftRow.person_name)


def day_bounds(day: date, zone_name: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(zone_name)
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


async def practice_ref(core: Core, practice: str | int | None) -> tuple[int, str]:
    """The practice's id and zone."""
    async with core.store.session() as s:
        row = await _practice(s, practice)
        return row.id, row.timezone


def today(zone_name: str) -> date:
    return utcnow().astimezone(ZoneInfo(zone_name)).date()


@dataclass(frozen=True, slots=True)
class SecondWriter:
    """A person whose shifts another writer also puts where clinicbot publishes them: events in their
    Outlook calendar (`where` "outlook"), or shifts in the team's Teams Shifts schedule ("teams")."""

    mailbox: str
    person: str
    lookalikes: int
    where: str = "outlook"


async def second_writers(core: Core, practice: str | int | None, *, days: int = 14) -> list[SecondWriter]:
    """Mailboxes where another writer (the scheduler's own Outlook integration) already puts the shifts.

    Compares the next `days` of each person's wanted shift events with their calendar: an event with
    the same subject and times that clinicbot did not write means two writers on one calendar.
    """
    return list((await _scan(core, practice, days=days, mailboxes=None, seconds=None)).found)


@dataclass(frozen=True, slots=True)
class SecondWriterCheck:
    """A bounded look for a second writer: what was found in which sample of calendars, and when."""

    at: datetime
    found: tuple[SecondWriter, ...]
    #: Calendars looked at, of those with upcoming shifts.
    checked: int
    of: int
    #: False when the time limit stopped it before the sample was done.
    complete: bool
    #: Calendars that could not be read (their first error).
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "checked": self.checked, "of": self.of, "complete": self.complete,
                "error": self.error[:300],
                "found": [{"mailbox": f.mailbox, "person": f.person, "lookalikes": f.lookalikes, "where": f.where}
                          for f in self.found]}

    @classmethod
    def from_dict(cls, doc: object) -> SecondWriterCheck | None:
        if not isinstance(doc, dict):
            return None
        try:
            found = tuple(SecondWriter(str(f["mailbox"]), str(f["person"]), int(f["lookalikes"]),
                                       "teams" if f.get("where") == "teams" else "outlook")
                          for f in doc.get("found") or [])
            return cls(datetime.fromisoformat(str(doc["at"])), found, int(doc["checked"]), int(doc["of"]),
                       bool(doc["complete"]), str(doc.get("error") or ""))
        except (KeyError, TypeError, ValueError):
            return None


#: The bounded check (doctor, the periodic job, after a chat upload): a sample of calendars, a week, a time limit.
CHECK_MAILBOXES = 10
CHECK_DAYS = 7
CHECK_SECONDS = 20.0
#: How often the leader repeats it, so the mapping card shows a recent answer without asking Graph itself.
SECOND_WRITER_EVERY_SECONDS = 3600
_CHECK_KEY = "second_writer_check"


async def _scan(core: Core, practice: str | int | None, *, days: int, mailboxes: int | None,
                seconds: float | None) -> SecondWriterCheck:
    """Look where the shifts are published for another writer's copies: the Outlook calendars with
    upcoming shifts (at most `mailboxes`, the busiest first) and, when Teams is a target, the team's
    Shifts schedule (one more "calendar" in the counts)."""
    now = utcnow()
    async with core.store.session() as s:
        row = await _practice(s, practice)
        source = await _source(s, row, "system", create=False)
        if source is None:
            return SecondWriterCheck(now, (), 0, 0, True)
        target = _target_of(source.config)
        shift_rows = (await s.scalars(select(ShiftRow).where(
            ShiftRow.source_id == source.id, ShiftRow.want_hash.is_not(None),
            ShiftRow.starts_at < now + timedelta(days=days), ShiftRow.ends_at > now,
        ).order_by(ShiftRow.want_mailbox, ShiftRow.starts_at))).all()
        zone = ZoneInfo(row.timezone)
        wanted: dict[str, tuple[str, list[ShiftEvent]]] = {}
        for r in shift_rows:
            assert r.want_mailbox is not None
            entry = wanted.setdefault(r.want_mailbox, (r.person_name, []))
            entry[1].append(_event(r, assignment_flags(source.config, r.assignment), zone, row.name))
        if not wanted:
            return SecondWriterCheck(now, (), 0, 0, True)
        publisher, _conn_id = await _open_publisher(core, s, row)
    order = sorted(wanted, key=lambda mb: (-len(wanted[mb][1]), mb))
    # Teams only: clinicbot writes no Outlook calendar, so an event there doubles nothing of its own.
    sample = ([] if not target.outlook else order if mailboxes is None else order[:mailboxes])
    teams = target.teams and bool(target.team_id)
    deadline = None if seconds is None else clock.monotonic() + seconds
    found: list[SecondWriter] = []
    checked, complete, errors = 0, True, []
    try:
        for mailbox in sample:
            person, events = wanted[mailbox]
            # The scheduler names its events after the assignment, whatever clinicbot's info flag says.
            named = [replace(e, subject=r.assignment) for e, r in zip(events, _rows_for(shift_rows, mailbox),
                                                                          strict=True)]
            left = None if deadline is None else deadline - clock.monotonic()
            if left is not None and left <= 0:
                complete = False
                break
            try:
                same = await asyncio.wait_for(publisher.lookalikes(mailbox, [*events, *named]), left)
            except TimeoutError:
                complete = False
                break
            except ProviderError as exc:
                errors.append(f"{mailbox}: {exc}")
                continue
            checked += 1
            if same:
                found.append(SecondWriter(mailbox, person, len(same)))
        if teams and complete:
            left = None if deadline is None else deadline - clock.monotonic()
            try:
                if left is not None and left <= 0:
                    raise TimeoutError
                found += await asyncio.wait_for(_teams_second_writers(publisher, target, wanted), left)
                checked += 1
            except TimeoutError:
                complete = False
            except ProviderError as exc:
                errors.append(f"Teams Shifts: {exc}")
    finally:
        await publisher.aclose()
    return SecondWriterCheck(now, tuple(found), checked, (len(order) if target.outlook else 0) + int(teams),
                             complete, errors[0] if errors else "")


async def _teams_second_writers(publisher: ShiftPublisher, target: ShiftTarget,
                                wanted: dict[str, tuple[str, list[ShiftEvent]]]) -> list[SecondWriter]:
    """People whose shifts the team's Shifts schedule already holds unmarked (a manager's by hand, another
    connector's): the same person, start and end as a shift clinicbot publishes there."""
    refs = [*wanted, *([] if _GUID.match(target.acts_as) else [target.acts_as])]
    ids = await publisher.user_ids(refs)
    acting = target.acts_as if _GUID.match(target.acts_as) else ids.get(target.acts_as)
    if acting is None:
        raise Refused(f"Teams Shifts: the directory does not know {target.acts_as!r}, who the app acts as")
    by_user = {ids[mb]: mb for mb in wanted if mb in ids}
    same = await publisher.teams_lookalikes(target.team_id, acting, [
        (user, e.start, e.end) for user, mb in by_user.items() for e in wanted[mb][1]])
    counts: dict[str, int] = {}
    for user, _start, _end in same:
        counts[by_user[user]] = counts.get(by_user[user], 0) + 1
    return [SecondWriter(mb, wanted[mb][0], n, "teams") for mb, n in sorted(counts.items())]


async def check_second_writers(core: Core, practice: str | int | None, *, mailboxes: int = CHECK_MAILBOXES,
                               days: int = CHECK_DAYS, seconds: float = CHECK_SECONDS) -> SecondWriterCheck:
    """The bounded second-writer check, stored for the mapping card (which never asks Graph itself).

    Conflict when no connection can read the calendars (no practice-wide Outlook)."""
    result = await _scan(core, practice, days=days, mailboxes=mailboxes, seconds=seconds)
    async with core.store.session() as s:
        row = await _practice(s, practice)
        source = await _source(s, row, "system", create=False)
        if source is not None:
            source.config = {**(source.config or {}), _CHECK_KEY: result.as_dict()}
    return result


async def stored_second_writers(core: Core, practice: str | int | None) -> SecondWriterCheck | None:
    """The last bounded check's answer (None: never checked)."""
    async with core.store.session() as s:
        row = await _practice(s, practice)
        source = await s.scalar(select(Connection).where(Connection.practice_id == row.id,
                                                         Connection.provider == INTEGRATION)
                                .order_by(Connection.id).limit(1))
        return SecondWriterCheck.from_dict((source.config or {}).get(_CHECK_KEY)) if source is not None else None


async def second_writer_job(core: Core) -> None:
    """The periodic job: each practice's bounded second-writer check; one practice's failure never stops another."""
    async with core.store.session() as s:
        sources = (await s.execute(select(Connection.practice_id).where(Connection.provider == INTEGRATION)
                                   .order_by(Connection.id))).scalars().all()
    for practice_id in dict.fromkeys(sources):
        try:
            await check_second_writers(core, practice_id)
        except (ServiceError, ProviderError) as exc:
            log.warning("second-writer check failed", extra={"practice_id": practice_id, "error": str(exc)[:200]})


def _rows_for(rows: Sequence[ShiftRow], mailbox: str) -> list[ShiftRow]:
    return [r for r in rows if r.want_mailbox == mailbox]


#: How often the leader publishes what is pending (a big upload, a failed write, a flag change).
PUBLISH_EVERY_SECONDS = 300


async def publish_pending_job(core: Core) -> None:
    """The periodic job: publish each practice's pending shift changes; one practice's failure never stops another."""
    async with core.store.session() as s:
        sources = (await s.execute(select(Connection.practice_id).where(Connection.provider == INTEGRATION)
                                   .order_by(Connection.id))).scalars().all()
    for practice_id in dict.fromkeys(sources):
        try:
            if await pending_count(core, practice_id):
                await publish(core, practice_id, actor="system:shifts")
        except (ServiceError, ProviderError) as exc:
            log.warning("shift publish failed", extra={"practice_id": practice_id, "error": str(exc)[:200]})


@dataclass(frozen=True, slots=True)
class LastPublish:
    """A practice's last shift publish, for `status` and `clinicbot sync status`."""

    practice_id: int
    source_id: int
    #: None: nothing published yet (a schedule was imported but never written to Outlook).
    at: datetime | None
    by: str
    #: The file, feed or push the published schedule came from.
    origin: str
    created: int
    updated: int
    deleted: int
    skipped_unmapped: int
    failed: int
    #: Shift changes not yet in the calendars.
    pending: int
    last_error: str = ""

    def describe(self) -> str:
        """One line: "2026-12-06 14:02 UTC from march.csv by cli:admin: 3 created, ... 0 pending"."""
        counts = (f"{self.created} created, {self.updated} updated, {self.deleted} deleted, "
                  f"{self.skipped_unmapped} skipped unmapped, {self.failed} failed, {self.pending} pending")
        if self.at is None:
            return f"never published ({self.pending} pending)" + (f"; last import {self.origin}" if self.origin
                                                                  else "")
        return f"{self.at:%Y-%m-%d %H:%M} UTC from {self.origin or 'the schedule'} by {self.by}: {counts}"

    def as_dict(self) -> dict[str, Any]:
        return {"practice_id": self.practice_id, "source_id": self.source_id,
                "at": self.at.isoformat() if self.at else None, "by": self.by, "origin": self.origin,
                "created": self.created, "updated": self.updated, "deleted": self.deleted,
                "skipped_unmapped": self.skipped_unmapped, "failed": self.failed, "pending": self.pending,
                "last_error": self.last_error, "summary": self.describe()}


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def last_publishes(core: Core, practice_id: int | None = None) -> list[LastPublish]:
    """Each shift source's last publish (all practices when `practice_id` is None), with what is pending."""
    async with core.store.session() as s:
        stmt = select(Connection).where(Connection.provider == INTEGRATION).order_by(Connection.id)
        if practice_id is not None:
            stmt = stmt.where(Connection.practice_id == practice_id)
        sources = [(c.id, c.practice_id, dict(c.config or {})) for c in (await s.scalars(stmt)).all()]
    out: list[LastPublish] = []
    for source_id, pid, config in sources:
        last: dict[str, Any] = config.get("last_publish") or {}
        imported: dict[str, Any] = config.get("last_import") or {}
        last = last if isinstance(last, dict) else {}
        imported = imported if isinstance(imported, dict) else {}
        try:
            at = datetime.fromisoformat(str(last["at"])) if last.get("at") else None
        except ValueError:
            at = None
        errors = last.get("errors") if isinstance(last.get("errors"), list) else []
        out.append(LastPublish(
            practice_id=pid, source_id=source_id, at=at, by=str(last.get("by") or ""),
            origin=str(last.get("origin") or imported.get("origin") or "")[:200],
            created=_count(last.get("created")), updated=_count(last.get("updated")),
            deleted=_count(last.get("deleted")), skipped_unmapped=_count(last.get("skipped_unmapped")),
            failed=_count(last.get("failed")), pending=await pending_count(core, pid),
            last_error=str(errors[-1])[:200] if errors else "",
        ))
    return out


async def pending_count(core: Core, practice_id: int) -> int:
    """Shift changes not yet in the calendars."""
    async with core.store.session() as s:
        total = 0
        for source_id, config in (await s.execute(select(Connection.id, Connection.config).where(
                Connection.practice_id == practice_id, Connection.provider == INTEGRATION))).all():
            where = _target_of(config)
            # (A sent mark is pending too: a calendar to look through for an unrecorded create.)
            outlook = or_(_PENDING if where.outlook else ShiftRow.pub_remote_id.is_not(None),
                          ShiftRow.sent_mailbox.is_not(None))
            teams = _TEAMS_PENDING if where.teams else ShiftRow.teams_remote_id.is_not(None)
            total += int(await s.scalar(select(func.count()).select_from(ShiftRow).where(
                ShiftRow.source_id == source_id, or_(outlook, teams) if where.team_id else outlook)) or 0)
        return total
