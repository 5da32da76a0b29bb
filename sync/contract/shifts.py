"""Shift schedules as plain data: what a shift source reads and what a publisher writes.

A schedule is a snapshot of a window, not a stream of changes: each import replaces what the
source said about that window, keyed by a stable shift id. Only published shifts are acted on.
A publisher (Graph's `publishing` slot) writes one event per shift into a person's own calendar,
marks it as clinicbot's with the source's key and the shift id, and finds its own events by that
mark, so it never touches an event it did not create.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sync.contract import ConnectionInfo, ProviderError

__all__ = [
    "IDENTITY_FIELDS",
    "AssignmentFlags",
    "IdentityField",
    "LookalikeEvent",
    "MailboxWork",
    "OwnEvent",
    "PublishOp",
    "PublishResult",
    "Publishing",
    "Shift",
    "ShiftEvent",
    "ShiftPerson",
    "ShiftPublisher",
    "ShiftSnapshot",
    "ShiftSourceSlot",
    "ShiftWrite",
    "TeamsAccess",
    "TeamsShiftOp",
    "TeamsTarget",
]

IdentityField = Literal["unique_id", "custom1", "custom2", "custom3", "custom4"]
#: The person fields a scheduler export carries, any of which may hold the Microsoft identity.
IDENTITY_FIELDS: tuple[IdentityField, ...] = ("unique_id", "custom1", "custom2", "custom3", "custom4")


@dataclass(frozen=True, slots=True)
class ShiftPerson:
    """A person as the scheduler names them: a display name and its identity fields (empty: unset)."""

    name: str
    unique_id: str = ""
    custom1: str = ""
    custom2: str = ""
    custom3: str = ""
    custom4: str = ""

    def identity(self, field_name: IdentityField) -> str:
        """The value of one identity field, stripped ("" when the scheduler left it empty)."""
        return str(getattr(self, field_name)).strip()


@dataclass(frozen=True, slots=True)
class Shift:
    """One assignment of one person on a schedule. `key` is stable across exports of the schedule."""

    key: str
    person: ShiftPerson
    assignment: str
    start: datetime
    end: datetime
    notes: str = ""
    published: bool = True


@dataclass(frozen=True, slots=True)
class ShiftSnapshot:
    """What a source says about a window: every shift in it (a shift missing from it was removed)."""

    shifts: tuple[Shift, ...]
    start: datetime
    end: datetime
    #: Where it came from, for the audit and the summary: a file name, a feed's host.
    origin: str


@dataclass(frozen=True, slots=True)
class AssignmentFlags:
    """Per-assignment choices, as a scheduler's Outlook integration offers them (busy is the default)."""

    send: bool = True
    notes: bool = False
    info: bool = True
    free: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {"send": self.send, "notes": self.notes, "info": self.info, "free": self.free}

    @classmethod
    def from_dict(cls, data: Any) -> AssignmentFlags:
        if not isinstance(data, dict):
            return cls()
        base = cls()
        return cls(**{k: bool(data.get(k, getattr(base, k))) for k in ("send", "notes", "info", "free")})


@dataclass(frozen=True, slots=True)
class ShiftEvent:
    """The calendar event one shift becomes in its person's calendar."""

    subject: str
    start: datetime
    end: datetime
    show_as: Literal["busy", "free"]
    body: str
    category: str


@dataclass(frozen=True, slots=True)
class OwnEvent:
    """An event a publisher finds in a mailbox carrying clinicbot's mark for this source."""

    shift_key: str
    remote_id: str
    subject: str = ""
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShiftWrite:
    """What every write of one shift names: create, update or delete, the shift, its event (for a
    create or update) and the remote id it has (for an update or delete). Keyword fields only."""

    kind: Literal["create", "update", "delete"]
    shift_key: str
    event: ShiftEvent | None = None
    remote_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishOp(ShiftWrite):
    """One write: create (with its transaction id), update or delete of the shift's event."""

    #: Sent with a create, so a create retried after a lost answer returns the first event.
    transaction_id: str = ""


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one op did: the event's id after a create or update, or the error it met."""

    shift_key: str
    kind: str
    remote_id: str | None = None
    error: ProviderError | None = None


@dataclass(frozen=True, slots=True)
class LookalikeEvent:
    """An event not made by clinicbot that matches a shift's subject and times (a second writer)."""

    subject: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TeamsShiftOp(ShiftWrite):
    """One write to a team's Teams Shifts schedule: create, replace (update) or delete a shared shift.

    `marker` goes at the end of the shift's notes: Shifts has no transactionId, so a create whose
    answer was lost is found again by it (and only shifts carrying clinicbot's marker are adopted).
    """

    user_id: str = ""
    marker: str = ""


@dataclass(frozen=True, slots=True)
class TeamsTarget:
    """A team's Shifts schedule, ready for writes: the team, who the app acts as, the scheduling group."""

    team_id: str
    acts_as: str
    group_id: str


@dataclass(frozen=True, slots=True)
class TeamsAccess:
    """What reading a team's Shifts schedule, acting as its owner, told of the app's access.

    `outcome`: "ok" (read it), "no_schedule" (no schedule yet, or no such team), "no_role" (Graph
    names a permission the app lacks), "refused" (refused otherwise: who it acts as, most often).
    `detail` holds Graph's code and message for the last two.
    """

    outcome: Literal["ok", "no_schedule", "no_role", "refused"]
    detail: str = ""
    enabled: bool = False
    #: The app registration (client id) and tenant the permission is granted to, for the words of a fix.
    app_id: str = ""
    tenant_id: str = ""


#: One mailbox's writes, as a streamed `write` receives them.
MailboxWork = tuple[str, Sequence[PublishOp]]


class ShiftPublisher(Protocol):
    """Writes shift events into people's calendars for one practice-wide connection."""

    async def warm(self) -> None:
        """Get ready to write (sign in) while the caller still plans; never raises: a failure shows
        on the first request, where the caller handles it."""
        ...

    async def unknown_people(self, refs: Sequence[str]) -> list[str]:
        """The refs (UPN or object id) the directory does not know."""
        ...

    async def own_events(self, mailbox: str, source_key: str) -> list[OwnEvent]:
        """Every event in `mailbox` marked as written by clinicbot for `source_key`."""
        ...

    async def write(self, source_key: str, work: Mapping[str, Sequence[PublishOp]] | AsyncIterable[MailboxWork],
                    landed: Callable[[str, PublishResult], None] | None = None) -> dict[str, list[PublishResult]]:
        """Perform each mailbox's ops within the platform's limits; per mailbox one result per op, in any order.

        `work` may be a stream of (mailbox, ops): writing starts with the first mailbox while the
        caller still prepares the rest. `landed(mailbox, result)` is called as each result arrives
        (the caller records it while later writes are in flight); it must not block.
        """
        ...

    async def lookalikes(self, mailbox: str, events: Sequence[ShiftEvent]) -> list[LookalikeEvent]:
        """Events not marked as clinicbot's with the subject and times of one of `events`."""
        ...

    async def user_ids(self, refs: Sequence[str]) -> dict[str, str]:
        """Each known ref (UPN or object id) -> its Entra object id; unknown refs are left out."""
        ...

    async def teams_ready(self, team_id: str, acts_as: str, zone: str, user_ids: Sequence[str]) -> TeamsTarget:
        """Make sure the team's Shifts schedule exists and is enabled, with clinicbot's scheduling group
        holding `user_ids`; Unavailable while the schedule is still being provisioned."""
        ...

    async def teams_marked(self, target: TeamsTarget, start: datetime, end: datetime) -> dict[str, str]:
        """Shifts in [start, end] whose notes end in a clinicbot marker: marker -> shift id."""
        ...

    async def teams_lookalikes(self, team_id: str, acts_as: str, wanted: Sequence[tuple[str, datetime, datetime]]
                               ) -> list[tuple[str, datetime, datetime]]:
        """Shared shifts in the team's schedule, not marked as clinicbot's, with one of `wanted`'s
        (user object id, start, end): a second writer's copies."""
        ...

    async def teams_access(self, team_id: str, acts_as: str) -> TeamsAccess:
        """Read the team's Shifts schedule acting as `acts_as` (an object id): what Graph allows, writing nothing."""
        ...

    async def teams_write(self, target: TeamsTarget, ops: Sequence[TeamsShiftOp]) -> list[PublishResult]:
        """Perform the ops within the platform's limits; one result per op, in any order."""
        ...

    async def aclose(self) -> None: ...


class Publishing(Protocol):
    """The publishing capability: a publisher for a practice-wide connection, or Refused."""

    def open(self, conn: ConnectionInfo, host: Any) -> ShiftPublisher: ...


@dataclass(frozen=True, slots=True)
class ShiftSourceSlot:
    """The shift-source capability: read a scheduler's export file, or its published feed."""

    #: File names it reads, by extension (".csv").
    extensions: tuple[str, ...]
    #: (file name, bytes, the practice's zone) -> the snapshot; BadPayload naming the row on bad input.
    parse_file: Callable[[str, bytes, str], ShiftSnapshot]
    #: (connection, host, the practice's zone) -> the snapshot of a connection's published feed (its URL is
    #: the credentials' "feed_url"); ProviderError when it cannot be fetched, BadPayload naming the line.
    read_feed: Callable[[ConnectionInfo, Any, str], Awaitable[ShiftSnapshot]] | None = None
    #: (raw body, lower-case headers, the push secret, now) -> None when signed and fresh, else why not.
    verify_push: Callable[[bytes, Mapping[str, str], str, datetime], str | None] | None = None
    #: (verified raw body, the practice's zone) -> the snapshot; BadPayload naming the shift.
    parse_push: Callable[[bytes, str], ShiftSnapshot] | None = None
    #: The header naming a push's delivery id (the replay memory's key; else the signed message's hash).
    push_delivery_header: str = ""
    #: The header carrying a push's signature (with its timestamp): a re-signed retry is a new delivery.
    push_signature_header: str = ""
    #: Largest push body read, in bytes.
    push_max_bytes: int = 10 * 1024 * 1024
    #: Largest file accepted, in bytes.
    max_bytes: int = 10 * 1024 * 1024
    notes: tuple[str, ...] = field(default_factory=tuple)
