"""One staff member's bookings on a booking platform, seen by the sync core as a source calendar.

The core syncs calendars; a booking platform is read the same way, so its bookings go through the
same plan/apply, projection and outbox as calendar bookings. Each staff member is one calendar
(remote id = the platform's staff id) whose practitioner comes from the staff mapping. Writes from
chat arrive as `update` (a reschedule, or a cancel when the status says so) and reach the platform
through its own reschedule and cancel calls, with the booking's version as the etag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Protocol, runtime_checkable

from sync.contract import (
    BookingSource,
    BusyInterval,
    CalendarCapabilities,
    CalendarInfo,
    ConnectionInfo,
    NotFound,
    Refused,
)
from sync.contract.integration import CalendarSlot, HostSettings
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["BookingCalendar", "ItemReads", "staff_calendars"]


@runtime_checkable
class ItemReads(Protocol):
    """A calendar that can read named items by id instead of its whole window (a booking platform
    whose deliveries name the booking); the engine uses it for a sync that asked for those ids only."""

    def reads_items(self) -> bool:
        """Whether item reads are possible (the platform fetches by id)."""
        ...

    async def changes_of(self, ids: Iterable[str], window: Window,
                         memo: MutableMapping[str, RemoteItem | None]) -> ChangeSet:
        """The named items as the platform holds them now (an incremental ChangeSet, never full)."""
        ...


class BookingCalendar:
    """A CalendarProvider over one staff member's bookings of a BookingSource."""

    def __init__(self, source: BookingSource, staff_id: str, *, own_source: bool = True) -> None:
        self.source = source
        self.staff_id = staff_id
        self.name = source.name
        caps = source.capabilities
        #: Read-only when the platform takes neither reschedules nor cancels back; never series.
        self.capabilities = CalendarCapabilities(read_only=not (caps.reschedule or caps.cancel), series=False)
        self._own = own_source

    async def changes(self, cursor: str | None, window: Window) -> ChangeSet:
        """The staff member's bookings in `window` (the platform's listing, filtered to this staff id)."""
        found = await self.source.changes(cursor, window, staff=self.staff_id)
        found.items = [i for i in found.items if i.event.staff_ref in (None, self.staff_id)]
        return found

    async def get(self, remote_id: str) -> RemoteItem:
        """The booking as the platform holds it now; NotFound when it moved to another staff member."""
        item = await self.source.fetch(remote_id)
        if item.event.staff_ref not in (None, self.staff_id):
            raise NotFound(f"booking {remote_id} is now with another staff member", provider=self.name)
        return item

    def reads_items(self) -> bool:
        return self.source.capabilities.fetch

    async def changes_of(self, ids: Iterable[str], window: Window,
                         memo: MutableMapping[str, RemoteItem | None]) -> ChangeSet:
        """The named bookings, each fetched once per run (`memo` is shared by the connection's calendars).

        One the platform does not return (NotFound: another account's id, a lying delivery) changes
        nothing here: only what the API says counts, and the next full read decides about the rest. One
        now with another staff member leaves this calendar (as it would be absent from a full listing);
        one outside the window is left to the window's own reads.
        """
        items: list[RemoteItem] = []
        moved: list[str] = []
        for ref in sorted(set(ids)):  # a booking id, or a reference the source's fetch reads (SimplyBook's)
            if ref not in memo:
                try:
                    memo[ref] = await self.source.fetch(ref)
                except NotFound:
                    memo[ref] = None
            item = memo[ref]
            if item is None:
                continue
            if item.event.staff_ref not in (None, self.staff_id):
                moved.append(item.remote_id)
            elif window.start <= item.event.start < window.end:
                items.append(item)
        return ChangeSet(items=items, deleted_ids=moved, full=False)

    async def create(self, event: EventData, idempotency_key: str) -> RemoteItem:
        """Bookings are made on the platform by its clients, never by clinicbot."""
        raise Refused(f"clinicbot does not make {self.name} bookings; they are made on {self.name}",
                      provider=self.name)

    async def update(self, remote_id: str, event: EventData, if_match: str | None) -> RemoteItem:
        """A cancel when `event` is cancelled, else a reschedule to its times; the version guards both."""
        if event.status == "cancelled":
            if not self.source.capabilities.cancel:
                raise Refused(f"{self.name} bookings cannot be cancelled from chat", provider=self.name)
            return await self.source.cancel(remote_id, "cancelled by the clinic", if_match)
        # A platform without a reschedule API refuses in its own words (Calendly names the client's link).
        return await self.source.reschedule(remote_id, event.start, event.end, if_match)

    async def delete(self, remote_id: str, if_match: str | None) -> None:
        """A delete of a booking is its cancellation (platforms keep cancelled bookings)."""
        if not self.source.capabilities.cancel:
            raise Refused(f"{self.name} bookings cannot be cancelled from chat", provider=self.name)
        await self.source.cancel(remote_id, "cancelled by the clinic", if_match)

    async def free_busy(self, window: Window) -> list[BusyInterval]:
        """Busy intervals of the staff member's live bookings."""
        found = await self.changes(None, window)
        return [BusyInterval(i.event.start, i.event.end) for i in found.items if i.event.status != "cancelled"]

    async def aclose(self) -> None:
        if self._own:
            await self.source.aclose()


def staff_calendars(open_source: Callable[[ConnectionInfo, HostSettings], BookingSource]) -> CalendarSlot:
    """A booking platform's calendar capability: each of its staff is one calendar, found by the source's
    `staff()` and opened as a BookingCalendar over a source of its own."""

    async def discover(conn: ConnectionInfo, host: HostSettings) -> list[CalendarInfo]:
        source = open_source(conn, host)
        try:
            return await source.staff()
        finally:
            await source.aclose()

    def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, host: HostSettings) -> BookingCalendar:
        return BookingCalendar(open_source(conn, host), calendar_remote_id)

    return CalendarSlot(discover=discover, open_calendar=open_calendar)
