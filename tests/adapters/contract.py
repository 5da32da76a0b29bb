"""The one contract every CalendarProvider passes (in the manner of vdirsyncer's StorageTests).

Subclass `CalendarProviderContract` in a test module and provide two async fixtures:

- `provider`: a fresh, empty, writable CalendarProvider bound to one remote calendar;
- `peer`: a second provider instance on the SAME remote calendar, used to make "someone else's"
  edits (a practitioner moving an event in Outlook, say).

Optional hooks a subclass may override:

- `expire_cursor(provider, cursor)`: make `cursor` stale on the server side and return the cursor
  to present (default: skip the expired-cursor test);
- `preserved_fields`: the EventData fields the provider keeps on a round trip;
- `window` fixture: the sync window the tests use (default: 30 days back, 180 ahead of now).

Tests that need a capability (`series`, `free_busy`, writes) skip with a reason when the provider
lacks it. Every test builds its events with unique uids, so a subclass may share one remote calendar
between tests as long as `provider` starts empty.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar, cast
from zoneinfo import ZoneInfo

import pytest

from sync.contract import (
    AlreadyExists,
    CalendarProvider,
    CursorExpired,
    NotFound,
    PagedChanges,
    WrongEtag,
)
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["CalendarProviderContract", "contract_event", "next_dst_change"]

BERLIN = ZoneInfo("Europe/Berlin")


def next_dst_change(after: datetime, zone: ZoneInfo = BERLIN) -> date:
    """The first local date after `after` whose UTC offset differs from the day before's."""
    day = after.astimezone(zone).date() + timedelta(days=1)
    previous = datetime.combine(day, time(12), zone).utcoffset()
    for _ in range(400):
        day += timedelta(days=1)
        offset = datetime.combine(day, time(12), zone).utcoffset()
        if offset != previous:
            return day
        previous = offset
    raise AssertionError(f"{zone} has no DST change within 400 days")


def contract_event(start: datetime, minutes: int = 45, **fields: Any) -> EventData:
    """A typical appointment-like event with a unique uid, starting at the aware `start`."""
    tzid = fields.pop("tzid", getattr(start.tzinfo, "key", None))
    values: dict[str, Any] = {
        "uid": f"contract-{uuid.uuid4().hex}",
        "summary": "Physio follow-up",
        "start": start,
        "end": start + timedelta(minutes=minutes),
        "tzid": tzid,
        "description": "Room 2, bring referral",
        "location": "Clinic Mitte",
    }
    values.update(fields)
    return EventData(**values)


def _wall(value: datetime, tzid: str | None) -> datetime:
    return value.astimezone(ZoneInfo(tzid) if tzid else UTC).replace(tzinfo=None)


def _ids(changes: ChangeSet) -> set[str]:
    return {item.remote_id for item in changes.items}


def _rrule_parts(rule: str | None) -> set[str]:
    return set((rule or "").upper().split(";")) - {""}


class CalendarProviderContract:
    """Behaviour every calendar provider must show; see the module docstring for the fixture API."""

    #: Fields compared after a create/get round trip. Narrow it (with a comment saying why) only
    #: when the platform truly cannot store a field.
    preserved_fields: ClassVar[tuple[str, ...]] = (
        "summary",
        "description",
        "location",
        "status",
        "transparent",
        "categories",
        "clinicbot_id",
    )

    @pytest.fixture
    def window(self) -> Window:
        now = datetime.now(UTC).replace(microsecond=0)
        return Window.around(now)

    async def expire_cursor(self, provider: CalendarProvider, cursor: str) -> str | None:
        """Make `cursor` stale on the server and return the cursor to present; None = can't."""
        return None

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def require_writable(provider: CalendarProvider) -> None:
        if provider.capabilities.read_only:
            pytest.skip(f"{provider.name} is read-only")

    @staticmethod
    def soon(days: int = 3, hour: int = 9, zone: ZoneInfo = BERLIN) -> datetime:
        """A wall-clock time a few days ahead, well inside the default window."""
        day = datetime.now(zone).date() + timedelta(days=days)
        return datetime.combine(day, time(hour), zone)

    async def listing(self, provider: CalendarProvider, window: Window) -> ChangeSet:
        changes = await provider.changes(None, window)
        assert changes.full, "an initial listing must be full so that absent items count as deleted"
        return changes

    # --- create / get ----------------------------------------------------------------------------
    async def test_create_get_round_trip_keeps_fields_and_wall_time_across_dst(
        self, provider: CalendarProvider, window: Window
    ) -> None:
        self.require_writable(provider)
        change = next_dst_change(datetime.now(UTC))
        before = datetime.combine(change - timedelta(days=2), time(9, 30), BERLIN)
        after = datetime.combine(change + timedelta(days=2), time(9, 30), BERLIN)
        assert before.utcoffset() != after.utcoffset()
        for start in (before, after):
            event = contract_event(
                start,
                status="tentative",
                categories=("Physio",),
                clinicbot_id=f"A-{uuid.uuid4().hex[:6]}",
            )
            created = await provider.create(event, idempotency_key=event.uid)
            assert created.remote_id and created.etag
            got = await provider.get(created.remote_id)
            assert got.remote_id == created.remote_id
            assert got.etag == created.etag
            for name in self.preserved_fields:
                assert getattr(got.event, name) == getattr(event, name), name
            assert got.event.tzid == "Europe/Berlin"
            assert got.event.start == event.start and got.event.end == event.end
            assert _wall(got.event.start, got.event.tzid) == start.replace(tzinfo=None)
            assert not got.event.all_day

    async def test_create_twice_with_one_key_makes_one_item(
        self, provider: CalendarProvider, window: Window
    ) -> None:
        self.require_writable(provider)
        event = contract_event(self.soon())
        first = await provider.create(event, idempotency_key=event.uid)
        with pytest.raises(AlreadyExists):
            await provider.create(event.with_changes(summary="retried"), idempotency_key=event.uid)
        listing = await self.listing(provider, window)
        assert [item.remote_id for item in listing.items] == [first.remote_id]
        assert listing.items[0].event.summary == event.summary

    # --- conditional writes ------------------------------------------------------------------------
    async def test_update_with_stale_etag_is_refused_and_changes_nothing(
        self, provider: CalendarProvider, peer: CalendarProvider
    ) -> None:
        self.require_writable(provider)
        event = contract_event(self.soon())
        created = await provider.create(event, idempotency_key=event.uid)
        moved = await peer.update(
            created.remote_id, event.with_changes(summary="moved by hand"), if_match=created.etag
        )
        assert moved.etag != created.etag
        with pytest.raises(WrongEtag):
            await provider.update(
                created.remote_id, event.with_changes(summary="ours"), if_match=created.etag
            )
        current = await provider.get(created.remote_id)
        assert current.event.summary == "moved by hand"
        assert current.etag == moved.etag

    async def test_update_with_current_etag_applies(self, provider: CalendarProvider) -> None:
        self.require_writable(provider)
        event = contract_event(self.soon())
        created = await provider.create(event, idempotency_key=event.uid)
        later = event.with_changes(start=event.start + timedelta(hours=2), end=event.end + timedelta(hours=2))
        updated = await provider.update(created.remote_id, later, if_match=created.etag)
        assert updated.remote_id == created.remote_id and updated.etag != created.etag
        got = await provider.get(created.remote_id)
        assert got.event.start == later.start and got.event.end == later.end

    async def test_delete_with_stale_etag_is_refused(
        self, provider: CalendarProvider, peer: CalendarProvider
    ) -> None:
        self.require_writable(provider)
        event = contract_event(self.soon())
        created = await provider.create(event, idempotency_key=event.uid)
        await peer.update(created.remote_id, event.with_changes(summary="edited"), if_match=created.etag)
        with pytest.raises(WrongEtag):
            await provider.delete(created.remote_id, if_match=created.etag)
        assert (await provider.get(created.remote_id)).event.summary == "edited"

    async def test_delete_then_get_is_not_found(self, provider: CalendarProvider) -> None:
        self.require_writable(provider)
        event = contract_event(self.soon())
        created = await provider.create(event, idempotency_key=event.uid)
        await provider.delete(created.remote_id, if_match=created.etag)
        with pytest.raises(NotFound):
            await provider.get(created.remote_id)

    async def test_update_or_delete_of_missing_item_is_not_found(
        self, provider: CalendarProvider, peer: CalendarProvider
    ) -> None:
        self.require_writable(provider)
        event = contract_event(self.soon())
        created = await provider.create(event, idempotency_key=event.uid)
        await peer.delete(created.remote_id, if_match=None)
        with pytest.raises(NotFound):
            await provider.update(created.remote_id, event, if_match=None)
        with pytest.raises(NotFound):
            await provider.delete(created.remote_id, if_match=None)
        with pytest.raises(NotFound):
            await provider.get(created.remote_id)

    # --- changes -------------------------------------------------------------------------------------
    async def test_initial_changes_list_every_item_in_full(
        self, provider: CalendarProvider, window: Window
    ) -> None:
        self.require_writable(provider)
        empty = await self.listing(provider, window)
        assert empty.items == [] and empty.cursor
        made: dict[str, RemoteItem] = {}
        for days in (1, 2, 5):
            event = contract_event(self.soon(days=days), summary=f"visit {days}")
            item = await provider.create(event, idempotency_key=event.uid)
            made[item.remote_id] = item
        listing = await self.listing(provider, window)
        assert _ids(listing) == set(made)
        by_id = {item.remote_id: item for item in listing.items}
        for remote_id, item in made.items():
            assert by_id[remote_id].etag == item.etag
            assert by_id[remote_id].event.summary == item.event.summary
        assert listing.cursor and listing.cursor != empty.cursor

    async def test_paging_is_declared_and_pages_add_up_to_the_listing(
        self, provider: CalendarProvider, window: Window
    ) -> None:
        """Optional capabilities are declared, not probed: `paged` says whether `change_pages` exists,
        and its pages hold exactly the listing's items, the cursor on the last page only."""
        assert provider.capabilities.paged == callable(getattr(provider, "change_pages", None))
        if not provider.capabilities.paged:
            pytest.skip(f"{provider.name} does not page its changes")
        self.require_writable(provider)
        made = set()
        for days in (1, 2, 5):
            event = contract_event(self.soon(days=days), summary=f"paged {days}")
            made.add((await provider.create(event, idempotency_key=event.uid)).remote_id)
        paged = cast(PagedChanges, provider)
        pages = [page async for page in paged.change_pages(None, window)]
        assert pages and all(p.cursor is None for p in pages[:-1]) and pages[-1].cursor
        assert {i.remote_id for p in pages for i in p.items} == made == _ids(await self.listing(provider, window))

    async def test_incremental_changes_return_only_the_peer_edit(
        self, provider: CalendarProvider, peer: CalendarProvider, window: Window
    ) -> None:
        self.require_writable(provider)
        items = []
        for days in (1, 2, 3):
            event = contract_event(self.soon(days=days))
            items.append(await provider.create(event, idempotency_key=event.uid))
        first = await self.listing(provider, window)
        assert first.cursor
        quiet = await provider.changes(first.cursor, window)
        assert quiet.items == [] and quiet.deleted_ids == [] and not quiet.full
        target = items[1]
        edited = await peer.update(
            target.remote_id, target.event.with_changes(summary="moved by hand"), if_match=target.etag
        )
        since = await provider.changes(quiet.cursor or first.cursor, window)
        assert not since.full
        assert [item.remote_id for item in since.items] == [target.remote_id]
        assert since.items[0].etag == edited.etag
        assert since.items[0].event.summary == "moved by hand"
        assert since.deleted_ids == []
        assert since.cursor and since.cursor != first.cursor
        after = await provider.changes(since.cursor, window)
        assert after.items == [] and after.deleted_ids == []

    async def test_peer_delete_shows_in_deleted_ids(
        self, provider: CalendarProvider, peer: CalendarProvider, window: Window
    ) -> None:
        self.require_writable(provider)
        keep = contract_event(self.soon(days=1))
        drop = contract_event(self.soon(days=2))
        await provider.create(keep, idempotency_key=keep.uid)
        dropped = await provider.create(drop, idempotency_key=drop.uid)
        first = await self.listing(provider, window)
        await peer.delete(dropped.remote_id, if_match=dropped.etag)
        since = await provider.changes(first.cursor, window)
        assert since.deleted_ids == [dropped.remote_id]
        assert since.items == []
        listing = await self.listing(provider, window)
        assert dropped.remote_id not in _ids(listing) and len(listing.items) == 1

    async def test_garbage_cursor_is_expired(self, provider: CalendarProvider, window: Window) -> None:
        for garbage in ("not-a-cursor", "{}", "\x00\xff"):
            with pytest.raises(CursorExpired):
                await provider.changes(garbage, window)

    async def test_expired_cursor_asks_for_a_full_resync(
        self, provider: CalendarProvider, window: Window
    ) -> None:
        self.require_writable(provider)
        event = contract_event(self.soon())
        await provider.create(event, idempotency_key=event.uid)
        cursor = (await self.listing(provider, window)).cursor
        assert cursor
        stale = await self.expire_cursor(provider, cursor)
        if stale is None:
            pytest.skip(f"{provider.name}: no way to expire a cursor on this server")
        with pytest.raises(CursorExpired):
            await provider.changes(stale, window)
        again = await self.listing(provider, window)
        assert [item.event.uid for item in again.items] == [event.uid]

    # --- free/busy -------------------------------------------------------------------------------------
    async def test_free_busy_excludes_transparent_and_cancelled(
        self, provider: CalendarProvider, window: Window
    ) -> None:
        self.require_writable(provider)
        busy = contract_event(self.soon(days=2, hour=9))
        free = contract_event(self.soon(days=2, hour=11), transparent=True)
        cancelled = contract_event(self.soon(days=2, hour=13), status="cancelled")
        tentative = contract_event(self.soon(days=2, hour=15), status="tentative")
        for event in (busy, free, cancelled, tentative):
            await provider.create(event, idempotency_key=event.uid)
        intervals = await provider.free_busy(window)
        spans = {(b.start, b.end) for b in intervals}
        assert spans == {(busy.start, busy.end), (tentative.start, tentative.end)}

    # --- all-day and series -------------------------------------------------------------------------
    async def test_all_day_round_trip(self, provider: CalendarProvider, window: Window) -> None:
        self.require_writable(provider)
        day = datetime.now(UTC).date() + timedelta(days=4)
        start = datetime.combine(day, time(0), UTC)
        event = contract_event(
            start, tzid=None, all_day=True, summary="Clinic closed", end=start + timedelta(days=2)
        )
        created = await provider.create(event, idempotency_key=event.uid)
        got = (await provider.get(created.remote_id)).event
        assert got.all_day
        zone = ZoneInfo(got.tzid) if got.tzid else UTC
        assert got.start.astimezone(zone).date() == day
        assert got.end.astimezone(zone).date() == day + timedelta(days=2)
        assert got.start.astimezone(zone).time() == time(0) == got.end.astimezone(zone).time()
        assert got.summary == "Clinic closed"
        listing = await self.listing(provider, window)
        assert [item.event.all_day for item in listing.items] == [True]

    async def test_recurring_series_with_exdate_round_trip(
        self, provider: CalendarProvider, window: Window
    ) -> None:
        self.require_writable(provider)
        if not provider.capabilities.series:
            pytest.skip(f"{provider.name} stores single occurrences, not series")
        # Weekly across a DST change: every occurrence stays at 08:00 Berlin wall time.
        change = next_dst_change(datetime.now(UTC))
        first = datetime.combine(change - timedelta(days=14), time(8), BERLIN)
        skipped = first + timedelta(weeks=2)
        event = contract_event(first, rrule="FREQ=WEEKLY;COUNT=5", exdates=(skipped,))
        created = await provider.create(event, idempotency_key=event.uid)
        got = (await provider.get(created.remote_id)).event
        assert _rrule_parts(got.rrule) == {"FREQ=WEEKLY", "COUNT=5"}
        assert set(got.exdates) == {skipped}
        assert got.start == first and got.tzid == "Europe/Berlin"
        # Free/busy sees the occurrences, not the series: four of them, all at 08:00 local.
        starts = sorted(b.start for b in await provider.free_busy(window))
        expected = [
            datetime.combine(first.date() + timedelta(weeks=n), time(8), BERLIN) for n in range(5) if n != 2
        ]
        assert starts == expected
        assert {_wall(s, "Europe/Berlin").time() for s in starts} == {time(8)}
