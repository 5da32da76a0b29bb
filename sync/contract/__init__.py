"""The provider protocols, their capability flags, and the one error tree every adapter maps onto.

Error tree::

    ProviderError
    ├── AuthExpired            credentials expired or revoked: the user gets a reconnect card
    ├── RateLimited            429 / throttling; carries retry_after seconds when the server said
    ├── PreconditionFailed     the write did not apply because the remote state differs
    │   ├── NotFound           404 / 410 on an item
    │   ├── AlreadyExists      409, or 412 on If-None-Match: * (a retried create)
    │   └── WrongEtag          412 on If-Match: someone else changed it; refetch and plan again
    ├── CursorExpired          410 / syncStateNotFound / invalid sync-token: do one full resync
    ├── Unavailable            5xx, timeouts, connection errors: retry later
    ├── BadPayload             the remote sent something we cannot read (names the line if it can)
    └── Refused                we will not talk to that address or do that operation (SSRF guard,
        │                      read-only calendar, capability missing)
        ├── RecipientOptedOut  the messaging platform will not reach that client: they opted out there
        └── NotGranted         the account's sign-in does not allow this (a scope not granted); the
                               message says how to grant it

Adapters raise only these; foreign exceptions are mapped at the adapter boundary.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = [
    "AlreadyExists",
    "AttachmentFile",
    "AttachmentInfo",
    "AuthExpired",
    "BadPayload",
    "BookingCapabilities",
    "BookingSource",
    "BusyInterval",
    "CalendarCapabilities",
    "CalendarProvider",
    "CursorExpired",
    "EventAttachments",
    "NotFound",
    "NotGranted",
    "OccurrenceIds",
    "PagedChanges",
    "PreconditionFailed",
    "ProviderError",
    "RateLimited",
    "RecipientOptedOut",
    "Refused",
    "Unavailable",
    "WrongEtag",
]


class ProviderError(Exception):
    """Base of every error an adapter raises. `user_message` is safe to show in chat."""

    user_message = "The calendar service reported an error."

    def __init__(self, message: str = "", *, provider: str | None = None) -> None:
        super().__init__(message or self.user_message)
        self.provider = provider


class AuthExpired(ProviderError):
    user_message = "The connection's sign-in has expired or was revoked. Reconnect it."


class RateLimited(ProviderError):
    user_message = "The calendar service is throttling us; the change will be retried."

    def __init__(self, message: str = "", *, retry_after: float | None = None, provider: str | None = None):
        super().__init__(message, provider=provider)
        self.retry_after = retry_after


class PreconditionFailed(ProviderError):
    user_message = "The calendar changed meanwhile; clinicbot will re-read it and try again."


class NotFound(PreconditionFailed):
    user_message = "The event no longer exists on that calendar."


class AlreadyExists(PreconditionFailed):
    """A create whose idempotency key was used before; `remote_id` names the existing item when known."""

    user_message = "The event already exists on that calendar."

    def __init__(self, message: str = "", *, remote_id: str | None = None, provider: str | None = None):
        super().__init__(message, provider=provider)
        self.remote_id = remote_id


class WrongEtag(PreconditionFailed):
    user_message = "The event was changed on the calendar meanwhile."


class CursorExpired(ProviderError):
    user_message = "The calendar's change cursor expired; a full resync will run."


class Unavailable(ProviderError):
    user_message = "The calendar service is unavailable right now; clinicbot will retry."


class BadPayload(ProviderError):
    user_message = "The calendar service sent data clinicbot could not read."

    def __init__(self, message: str = "", *, line: int | None = None, provider: str | None = None):
        super().__init__(message, provider=provider)
        self.line = line


class Refused(ProviderError):
    user_message = "clinicbot refused that request."


class RecipientOptedOut(Refused):
    """The platform refused a client message because the recipient opted out with it (Twilio's 21610)."""

    user_message = "The client opted out of these messages with the messaging platform."


class NotGranted(Refused):
    """The sign-in lacks a permission (an OAuth scope) the operation needs; `str()` says how to grant it."""

    user_message = "The account's sign-in does not allow this; connect it again and allow it."


@dataclass(frozen=True, slots=True)
class CalendarCapabilities:
    read_only: bool = False
    #: The provider can push change notifications (webhooks, watch channels).
    push: bool = False
    #: The provider answers free/busy queries itself.
    free_busy: bool = False
    #: The provider has incremental change cursors (delta / sync tokens).
    delta: bool = False
    #: The calendar stores recurring series (RRULE) rather than single occurrences.
    series: bool = True
    #: The provider streams its changes in pages (PagedChanges.change_pages), the cursor on the last.
    paged: bool = False


@dataclass(frozen=True, slots=True)
class BusyInterval:
    start: datetime
    end: datetime


@runtime_checkable
class CalendarProvider(Protocol):
    """One remote calendar. Instances are cheap and bound to one calendar of one connection."""

    name: str
    capabilities: CalendarCapabilities

    async def changes(self, cursor: str | None, window: Window) -> ChangeSet:
        """Items changed since `cursor` (all items in `window` when None). Raises CursorExpired."""
        ...

    async def create(self, event: EventData, idempotency_key: str) -> RemoteItem:
        """Create `event`; a retry with the same key never makes a second copy (AlreadyExists)."""
        ...

    async def update(self, remote_id: str, event: EventData, if_match: str | None) -> RemoteItem:
        """Replace the item; raises WrongEtag when `if_match` is stale, NotFound when it is gone."""
        ...

    async def delete(self, remote_id: str, if_match: str | None) -> None:
        """Delete the item; NotFound when it is already gone."""
        ...

    async def get(self, remote_id: str) -> RemoteItem:
        """Read one item; NotFound when it is gone."""
        ...

    async def free_busy(self, window: Window) -> list[BusyInterval]:
        """Busy intervals in `window`, opaque events only."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class PagedChanges(CalendarProvider, Protocol):
    """A CalendarProvider that declares `capabilities.paged`: the engine writes each page as it arrives."""

    def change_pages(self, cursor: str | None, window: Window) -> AsyncGenerator[ChangeSet, None]:
        """`changes` in pages: items (and deletions) spread over the pages, the new cursor on the last
        page only, so a sync cut short stores nothing it did not finish. Raises CursorExpired."""
        ...


@dataclass(frozen=True, slots=True)
class BookingCapabilities:
    fetch: bool = True
    reschedule: bool = False
    cancel: bool = False


@runtime_checkable
class BookingSource(Protocol):
    """A booking platform's bookings, read through its API (a webhook only says when to look).

    Items are RemoteItems: the booking id, its version as the etag (Square's `version`; platforms
    without one give a content hash), and the booking as EventData with `staff_ref` naming the
    platform's staff member. The core wraps one staff member's bookings as a source calendar
    (sync.contract.booking.BookingCalendar), so they go through the same plan/apply as calendars.
    """

    name: str
    capabilities: BookingCapabilities

    async def staff(self) -> list[CalendarInfo]:
        """The platform's staff members (remote_id = their staff id), one booking calendar each."""
        ...

    async def changes(self, cursor: str | None, window: Window, staff: str | None = None) -> ChangeSet:
        """Bookings in `window` (of one staff member when given); a full listing unless the platform has cursors."""
        ...

    async def fetch(self, external_id: str) -> RemoteItem:
        """Read one booking; NotFound when the platform has no such booking."""
        ...

    async def reschedule(self, external_id: str, start: datetime, end: datetime, version: str | None) -> RemoteItem:
        """Move the booking; WrongEtag when `version` is stale, Refused (in words) when the platform says no."""
        ...

    async def cancel(self, external_id: str, reason: str, version: str | None) -> RemoteItem:
        """Cancel the booking; WrongEtag when `version` is stale."""
        ...

    async def aclose(self) -> None: ...


def capability_required(provider: Any, flag: str) -> None:
    """Raise Refused when the provider lacks a capability (read_only counts as lacking writes)."""
    caps = provider.capabilities
    if flag == "write" and getattr(caps, "read_only", False):
        raise Refused(f"{provider.name} calendars are read-only", provider=provider.name)
    if flag != "write" and not getattr(caps, flag, False):
        raise Refused(f"{provider.name} cannot {flag}", provider=provider.name)


@dataclass(slots=True)
class ConnectionInfo:
    """What an adapter needs to open a connection: no database rows, just values.

    `credentials` is the decrypted credential document. When an adapter refreshes tokens it calls
    `save_credentials(new_document)`, and the core stores it encrypted.
    """

    provider: str
    account: str
    config: dict[str, Any]
    credentials: dict[str, Any] | None
    save_credentials: Any = None  # Callable[[dict[str, Any]], Awaitable[None]] | None
    #: Test hook and national clouds: an httpx transport to use instead of the network.
    transport: Any = None
    #: Callable[[RotateStep], Awaitable[dict[str, Any]]] | None: for single-use refresh tokens. The core
    #: holds the connection's token lock (across processes), reads the stored document afresh, calls
    #: `step(current)` and, when it returns a new document, stores it before the lock is released;
    #: the document in force comes back. So two refreshes never spend the same refresh token.
    #: (Last, so positional construction `(provider, account, config, credentials, save, transport)` holds.)
    rotate_credentials: Any = None


@dataclass(frozen=True, slots=True)
class CalendarInfo:
    """A calendar found in an account by discovery."""

    remote_id: str
    name: str
    timezone: str | None = None
    read_only: bool = False
    #: The account's main calendar (Google's primary, Outlook's default): it gets the integration's
    #: primary role at connect.
    primary: bool = False
    #: e.g. {"ctag": ..., "supports_sync": True}
    extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """A file attached to one calendar event, as its platform lists it."""

    remote_id: str
    name: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class AttachmentFile:
    info: AttachmentInfo
    content: bytes


@runtime_checkable
class EventAttachments(Protocol):
    """A CalendarProvider whose events carry files (Outlook's file attachments)."""

    async def attachments(self, remote_id: str) -> list[AttachmentInfo]:
        """The files attached to the event (links and embedded items left out); NotFound when it is gone."""
        ...

    async def attachment(self, remote_id: str, attachment_id: str, max_bytes: int) -> AttachmentFile:
        """One file with its bytes; Refused when it is larger than `max_bytes`, NotFound when gone."""
        ...


@runtime_checkable
class OccurrenceIds(Protocol):
    """A CalendarProvider that keeps series as series but gives each occurrence an id of its own
    (Google's instance ids, "<series id>_<YYYYMMDDTHHMMSSZ>"), read and written like an event:
    writing to one makes an exception of that occurrence, never a change of the series."""

    def occurrence_id(self, series_remote_id: str, occurrence: EventData) -> str:
        """The id of the occurrence of the series whose RECURRENCE-ID is `occurrence.recurrence_id`."""
        ...

    def series_id(self, remote_id: str) -> str | None:
        """The series an occurrence id belongs to (None when `remote_id` names no occurrence)."""
        ...
