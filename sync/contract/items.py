"""Provider-neutral event data exchanged between the sync core and the adapters.

Adapters turn their platform's payloads into `EventData` and back. They import this module and
nothing else from sync; the database model stays private to the core.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal

__all__ = ["NO_SHOW", "ChangeSet", "EventData", "EventStatus", "ExternalChange", "RemoteItem", "Window"]

EventStatus = Literal["confirmed", "tentative", "cancelled"]
#: The category a booking platform's item carries when the client did not come (Square NO_SHOW,
#: Acuity noShow, Calendly's invitee no_show): the appointment's status becomes "no_show", never
#: "cancelled". Such an item's own status stays confirmed.
NO_SHOW = "no_show"


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open span of time [start, end) with aware datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("Window needs aware datetimes")
        if self.end <= self.start:
            raise ValueError("Window end must be after its start")

    @classmethod
    def around(cls, now: datetime, days_back: int = 30, days_ahead: int = 180) -> Window:
        return cls(now - timedelta(days=days_back), now + timedelta(days=days_ahead))

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return start < self.end and end > self.start


@dataclass(frozen=True, slots=True)
class EventData:
    """One calendar event or booking, as the sync core sees it.

    `start`/`end` are aware datetimes; `tzid` keeps the IANA zone the event was written in so that
    a copy keeps local wall-clock time across DST. An all-day event has `all_day` set and
    midnight-to-midnight times in `tzid` (or UTC when floating).
    """

    uid: str
    summary: str
    start: datetime
    end: datetime
    tzid: str | None = None
    all_day: bool = False
    description: str = ""
    location: str = ""
    status: EventStatus = "confirmed"
    transparent: bool = False
    #: RRULE text without the "RRULE:" prefix, for calendars that hold series.
    rrule: str | None = None
    exdates: tuple[datetime, ...] = ()
    #: Set on an overridden occurrence of a series.
    recurrence_id: datetime | None = None
    #: Whether that RECURRENCE-ID was a DATE (None: not known, take `all_day`). An override made
    #: all-day (or timed) keeps the value type of the occurrence it replaces, so it is keyed by it.
    recurrence_all_day: bool | None = None
    #: RECURRENCE-ID;RANGE=THISANDFUTURE: the change applies to this and every later occurrence.
    recurrence_range: str | None = None
    #: RDATEs: occurrences added to the series besides its rules.
    rdates: tuple[datetime, ...] = ()
    categories: tuple[str, ...] = ()
    #: Booking fields; absent on plain calendar events.
    client_name: str | None = None
    client_email: str | None = None
    service: str | None = None
    #: The client's phone number as the booking platform has it (absent on calendar events).
    client_phone: str | None = None
    #: clinicbot's appointment id when this item is one of our mirror copies.
    clinicbot_id: str | None = None
    #: A booking platform's staff id for this booking (routing only: which booking calendar holds it).
    staff_ref: str | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"event {self.uid!r}: times must be timezone-aware")
        if self.end < self.start:
            raise ValueError(f"event {self.uid!r}: ends before it starts")

    def with_changes(self, **changes: object) -> EventData:
        return replace(self, **changes)  # type: ignore[arg-type]

    def content_hash(self) -> str:
        """A stable hash of the fields that matter; equal hashes mean nothing to sync."""
        # Every field is immutable (str, datetime, tuples of them), so a shallow dict is the same
        # payload asdict() would build, without its deep copies (hashing 10,000 events matters).
        payload = {name: getattr(self, name) for name in _HASHED_FIELDS}
        for name in _HASHED_WHEN_SET:  # fields added later: unset, they leave every old hash as it was
            if payload[name] in (None, ()):
                del payload[name]
        return hashlib.sha256(_HASH_ENCODER.encode(payload).encode()).hexdigest()


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        # One instant hashes the same in any zone: the database hands times back in UTC while a
        # calendar reads them in the event's zone, and that alone must not look like an edit
        # (a false "edited by hand" on every mirror copy). A change of zone still shows in `tzid`.
        return value.astimezone(UTC).isoformat() if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


#: What content_hash covers, and one encoder for it (json.dumps with options builds one per call).
_HASHED_FIELDS = tuple(f.name for f in fields(EventData) if f.name not in ("clinicbot_id", "staff_ref"))
_HASHED_WHEN_SET = ("recurrence_all_day", "recurrence_range", "rdates", "client_phone")
_HASH_ENCODER = json.JSONEncoder(sort_keys=True, default=_json_default, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class RemoteItem:
    """An event as stored on a remote calendar: its id there, its etag/change key, its content."""

    remote_id: str
    etag: str | None
    event: EventData


@dataclass(slots=True)
class ChangeSet:
    """What changed on a calendar since a cursor.

    When `full` is true the items are the whole calendar within the window: anything known
    locally and absent here was deleted remotely.
    """

    items: list[RemoteItem] = field(default_factory=list)
    deleted_ids: list[str] = field(default_factory=list)
    cursor: str | None = None
    full: bool = False
    #: What the adapter skipped or repaired while reading ("skipped <uid> line 12: ..."; never event
    #: content): kept in the connection's health, shown by `sync status` and `doctor`.
    notes: list[str] = field(default_factory=list)
    #: Remote ids of items that could not be read this time: a full listing does not delete them.
    kept_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ExternalChange:
    """A change announced by a booking platform's webhook."""

    kind: Literal["created", "rescheduled", "cancelled", "updated"]
    external_id: str
    event: EventData | None = None
    #: Practitioner hint from the platform (email, user URI ...), mapped by the core.
    practitioner_ref: str | None = None
