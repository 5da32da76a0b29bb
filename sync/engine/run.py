"""The sync engine: read a calendar's changes since its cursor, plan, apply, store the new cursor.

Changes are planned and applied page by page as the provider delivers them (a 10,000-item first
sync is never held whole), all in one transaction that ends by storing the new cursor, so a
crash either keeps all of it or none. An expired cursor triggers exactly one full resync, logged and audited.
A run with nothing to do costs one provider call and one small UPDATE.

A run the sync queue started for named items only (`requested_items`: ids a booking platform's
delivery named) reads just those from a calendar that can (`ItemReads`) and has been read whole
before: one fetch per id for the whole connection, as an incremental change set. Anything else, and
any calendar that cannot, reads its window as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Container, Iterable, MutableMapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import case, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import (
    AuthExpired,
    CalendarCapabilities,
    CalendarProvider,
    CursorExpired,
    OccurrenceIds,
    PagedChanges,
    ProviderError,
)
from sync.contract.booking import ItemReads
from sync.contract.items import ChangeSet, RemoteItem, Window
from sync.engine.apply import ACTOR, SyncReport, apply
from sync.engine.backfill import run_backfill
from sync.engine.outbox import checkpoint
from sync.engine.plan import CalendarView, Canonical, Changes, Incoming, OverlapIndex, Policy, plan
from sync.engine.reconnect import ExpiredConnection, tell_reconnect
from sync.engine.recurrence import expand_items, incoming, occurrences
from sync.engine.snapshots import (
    calendar_view,
    load_appointments,
    load_links,
    load_mirrors,
    load_overlapping,
    load_unseen_links,
    load_writable_sources,
)
from sync.integrations.providers import open_provider
from sync.runtime.core import Core
from sync.runtime.events import answers_per_sync
from sync.runtime.locks import connection_lock
from sync.runtime.syncqueue import requested_items
from sync.store import audit
from sync.store.model import Appointment, Calendar, Connection, Link, Practice

__all__ = ["Progress", "SyncReport", "sync_all", "sync_calendar", "sync_connection"]

log = logging.getLogger("clinicbot.sync")

#: progress(stage, done, total): "fetch", "plan", "apply".
Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class _Target:
    conn: Connection
    cal: Calendar
    view: CalendarView
    policy: Policy
    mirrors: list[CalendarView]
    #: For a mirror: the source calendars whose appointments a hand edit may follow or keep.
    writable_sources: frozenset[int] = frozenset()


async def sync_all(core: Core, *, progress: Progress | None = None) -> SyncReport:
    """Sync every enabled connection; one failing connection does not stop the others."""
    async with core.store.session() as s:
        ids = list((await s.scalars(select(Connection.id).where(Connection.sync_enabled.is_(True))
                                    .order_by(Connection.id))).all())
    total = SyncReport()
    for conn_id in ids:
        try:
            total.add(await sync_connection(core, conn_id, progress=progress))
        except Exception as exc:  # e.g. its lock or its rows could not be read: the next still syncs
            log.exception("sync failed unexpectedly", extra={"connection_id": conn_id})
            await _record_failure(core, conn_id, exc)
            total.add(SyncReport(failed=1))
    return total


async def sync_connection(
    core: Core, connection_id: int, *, progress: Progress | None = None, wait: float = 0.0
) -> SyncReport:
    """Sync every enabled source and mirror calendar of one connection (and its work calendars with
    tracked events), under its lock."""
    started = time.perf_counter()
    async with core.store.session() as s:
        cal_ids = list((await s.scalars(
            select(Calendar.id).where(Calendar.connection_id == connection_id, Calendar.sync_enabled.is_(True),
                                      or_(Calendar.role.in_(("source", "mirror")), _tracking()))
            .order_by(Calendar.id))).all())
    report = SyncReport()
    items = requested_items.get()
    memo: dict[str, RemoteItem | None] = {}  # each named item fetched once for all the calendars
    async with connection_lock(core, connection_id, wait=wait):
        for cal_id in cal_ids:
            report.add(await _sync_locked(core, cal_id, progress, items, memo))
    report.seconds = time.perf_counter() - started
    return report


def _tracking() -> Any:
    """A work calendar with tracked events: read for those (the rest of it is read live, never synced)."""
    return (Calendar.role == "work") & exists().where(Link.calendar_id == Calendar.id)


async def sync_calendar(
    core: Core, calendar_id: int, *, progress: Progress | None = None, wait: float = 0.0
) -> SyncReport:
    """Sync one calendar, under its connection's lock."""
    started = time.perf_counter()
    async with core.store.session() as s:
        conn_id = await s.scalar(select(Calendar.connection_id).where(Calendar.id == calendar_id))
    if conn_id is None:
        raise LookupError(f"there is no calendar {calendar_id}; `clinicbot calendar list` shows them")
    async with connection_lock(core, conn_id, wait=wait):
        report = await _sync_locked(core, calendar_id, progress)
    report.seconds = time.perf_counter() - started
    return report


class _SeenIds:
    """Remote ids, kept as 16-byte digests in one buffer: 10,000 cost 160 KB and leave no small
    objects behind each page (survivors scattered among a page's freed objects keep the
    allocator from returning that memory)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def add(self, remote_ids: Iterable[str]) -> None:
        for rid in remote_ids:
            self._buffer += _digest(rid)

    def frozen(self) -> Container[str]:
        """A membership test over the ids added so far."""
        buf = self._buffer
        digests = {bytes(buf[i:i + 16]) for i in range(0, len(buf), 16)}
        return _DigestSet(digests)


class _DigestSet:
    def __init__(self, digests: set[bytes]) -> None:
        self._digests = digests

    def __contains__(self, remote_id: object) -> bool:
        return isinstance(remote_id, str) and _digest(remote_id) in self._digests


def _digest(remote_id: str) -> bytes:
    return hashlib.blake2b(remote_id.encode(), digest_size=16).digest()


class _OtherSources:
    """The practitioner's active appointments (from every source, this one included), for
    double-booking checks: read over the span the pages need (widened when a page reaches beyond
    it), again after a page that changed some, and handed to each page only where they overlap its items."""

    def __init__(self, view: CalendarView) -> None:
        self._view = view
        self._span: tuple[datetime, datetime] | None = None
        self._index = OverlapIndex(())

    async def overlapping(self, s: AsyncSession, items: list[Incoming]) -> list[Canonical]:
        pid = self._view.practitioner_id
        if pid is None:
            return []
        lo, hi = min(i.event.start for i in items), max(i.event.end for i in items)
        if self._span is None or lo < self._span[0] or hi > self._span[1]:
            if self._span is not None:
                lo, hi = min(lo, self._span[0]), max(hi, self._span[1])
            self._index = OverlapIndex(await load_overlapping(s, pid, lo, hi))
            self._span = (lo, hi)
        found: dict[int, Canonical] = {}
        for i in items:
            for appt in self._index.overlapping(pid, i.event.start, i.event.end):
                found[appt.id] = appt
        return list(found.values())

    def forget(self) -> None:
        """A page changed appointments: the next page reads them as they are now."""
        self._span = None


async def _load_target(core: Core, calendar_id: int) -> _Target | None:
    async with core.store.session() as s:
        cal = await s.get(Calendar, calendar_id)
        if cal is None:
            return None
        conn = await s.get(Connection, cal.connection_id)
        assert conn is not None
        practice = await s.get(Practice, conn.practice_id)
        policy = Policy.of(practice)
        view = calendar_view(cal, conn)
        mirrors = await load_mirrors(s, conn.practice_id) if view.role == "source" else []
        writable = await load_writable_sources(s, conn.practice_id) if view.role == "mirror" else frozenset()
    return _Target(conn, cal, view, policy, mirrors, writable)


class _ItemRead:
    """A calendar seen through an item read: its one page is the named items, its cursor unchanged."""

    def __init__(self, provider: ItemReads, capabilities: CalendarCapabilities, ids: frozenset[str],
                 memo: MutableMapping[str, RemoteItem | None]) -> None:
        self._provider, self._ids, self._memo = provider, ids, memo
        self.capabilities = replace(capabilities, paged=False)

    async def changes(self, cursor: str | None, window: Window) -> ChangeSet:
        found = await self._provider.changes_of(self._ids, window, self._memo)
        found.cursor, found.full = cursor, False
        return found


class _CalendarChanged(Exception):
    """The calendar's role or sync switch changed while it was read: what was read is not applied."""


async def _sync_locked(core: Core, calendar_id: int, progress: Progress | None,
                       items: frozenset[str] | None = None,
                       memo: MutableMapping[str, RemoteItem | None] | None = None) -> SyncReport:
    """Sync one calendar. A calendar whose role or sync switch changed while it was read (a source
    made a work calendar, sync turned off) has nothing of that read applied: its cursor stays where
    it was (a role change resets it), so its next sync reads those changes again, as it is then."""
    try:
        return await _sync_target(core, calendar_id, progress, items, memo)
    except _CalendarChanged:
        log.info("calendar changed while it was read; nothing of that read applied", extra={"calendar_id": calendar_id})
        return SyncReport(calendars=1)


async def _sync_target(core: Core, calendar_id: int, progress: Progress | None,
                       items: frozenset[str] | None,
                       memo: MutableMapping[str, RemoteItem | None] | None) -> SyncReport:
    target = await _load_target(core, calendar_id)
    if target is None or not target.view.sync_enabled or target.view.role not in ("source", "mirror", "work"):
        return SyncReport(calendars=1)
    conn, cal = target.conn, target.cal
    window = Window.around(core.clock(), conn.window_days_back, conn.window_days_ahead)
    provider = open_provider(core, conn, cal)
    try:
        if items is not None and cal.cursor_updated_at is not None and isinstance(provider, ItemReads) \
                and provider.reads_items():
            reader = cast(CalendarProvider, _ItemRead(provider, provider.capabilities, items,
                                                       {} if memo is None else memo))
            return await _read_and_apply(core, target, window, reader, cal.cursor, None, progress, ids=provider)
        if progress:
            progress("fetch", 0, 0)
        try:
            report = await _read_and_apply(core, target, window, provider, cal.cursor, None, progress, ids=provider)
        except CursorExpired:
            log.warning("sync cursor expired; running one full resync",
                        extra={"calendar_id": cal.id, "connection_id": conn.id})
            report = await _read_and_apply(core, target, window, provider, None, "cursor_expired", progress,
                                           ids=provider)
        if target.view.role == "mirror" and cal.backfill_state in ("pending", "copying"):
            # After the read: hand edits made meanwhile are planned before copies are queued.
            report.backfilled += (await run_backfill(core, target.view, target.policy, window, core.clock(),
                                                     progress)).queued
        return report
    except _CalendarChanged:
        raise
    except ProviderError as exc:
        await _record_failure(core, conn.id, exc)
        return SyncReport(calendars=1, failed=1)
    except Exception as exc:  # anything one calendar raises stays with its connection (issue 21, item 6)
        log.exception("sync failed unexpectedly", extra={"calendar_id": cal.id, "connection_id": conn.id})
        await _record_failure(core, conn.id, exc)
        return SyncReport(calendars=1, failed=1)
    finally:
        with contextlib.suppress(Exception):
            await provider.aclose()


async def _pages(provider: CalendarProvider, cursor: str | None, window: Window) -> AsyncGenerator[ChangeSet, None]:
    """The provider's changes page by page (`change_pages` where it declares `paged`, else one page).

    Pages are read one ahead in a task of their own: the next page is received and parsed while
    this one's rows are written (the database driver works in its own thread), so the two overlap.
    """
    if not provider.capabilities.paged:
        yield await provider.changes(cursor, window)
        return
    source: AsyncGenerator[ChangeSet, None] = cast(PagedChanges, provider).change_pages(cursor, window)
    ahead: asyncio.Queue[ChangeSet | Exception | None] = asyncio.Queue(maxsize=1)

    async def read_ahead() -> None:
        try:
            async for page in source:
                await ahead.put(page)
        except Exception as exc:  # handed to the reader, which raises it as its own
            await ahead.put(exc)
        else:
            await ahead.put(None)

    task = asyncio.create_task(read_ahead())
    try:
        while (item := await ahead.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        task.cancel()
        # Wait for the task to end without raising its own cancellation; a cancellation of the
        # CALLER while it waits still raises here (suppressing CancelledError hid it, issue 21).
        await asyncio.wait({task})
        await source.aclose()


async def _read_and_apply(
    core: Core, target: _Target, window: Window, provider: CalendarProvider, cursor: str | None,
    resync_reason: str | None, progress: Progress | None, *, ids: object = None,
) -> SyncReport:
    """Read the changes since `cursor` and apply them page by page in ONE transaction that ends by
    storing the new cursor: a crash or a provider error half-way commits nothing.

    A work calendar is read per occurrence, each named by its own id where the provider (`ids`,
    sync.contract.OccurrenceIds) gives one: a tracked event may be one visit of a series."""
    conn, cal = target.conn, target.cal
    series = provider.capabilities.series
    work = target.view.role == "work"
    tracked: tuple[set[str], set[str]] = (set(), set())
    if work:  # only the tracked events (and the series they belong to) are read in and expanded
        async with core.store.session() as s:
            tracked = await _tracked_keys(s, cal.id)
    report = SyncReport(calendars=1)
    seen = _SeenIds()  # remote ids read (a full listing's absentees were deleted remotely)
    others = _OtherSources(target.view)
    full, new_cursor, read = False, cursor, 0
    notes: list[str] = []  # what the reader skipped or repaired, for the calendar's health
    now = core.clock()
    async with AsyncExitStack() as stack:
        session: AsyncSession | None = None
        pages = _pages(provider, cursor, window)
        stack.push_async_callback(pages.aclose)
        async for page in pages:
            full, new_cursor = page.full, page.cursor
            notes.extend(page.notes)
            seen.add(page.kept_ids)  # could not be read this time: not deleted as gone
            if not (page.items or page.deleted_ids):
                continue
            if session is None:
                checkpoint(core, "sync.fetched")
                session = await stack.enter_async_context(core.store.session())
                stack.enter_context(answers_per_sync(session))
            deleted = page.deleted_ids
            if work:
                uids, remote_ids = tracked
                items = occurrences([i for i in page.items if i.event.uid in uids or i.remote_id in remote_ids],
                                    window, ids)
                deleted = await _with_occurrences(session, cal.id, deleted, ids)
            else:
                items = incoming(page.items) if series else expand_items(page.items, window)
            seen.add(i.remote_id for i in items)
            read += len(items)
            report.add(await _apply_page(session, core, target, window, items, deleted, now, others))
            if progress:
                progress("apply", read, 0)
        if session is None:
            checkpoint(core, "sync.fetched")
            if not (full or resync_reason) and new_cursor == cal.cursor:
                async with core.store.session() as s:  # nothing changed: one small UPDATE
                    await s.execute(update(Connection).where(Connection.id == conn.id)
                                    .values(_succeeded(now, conn.status)))
                return report
            session = await stack.enter_async_context(core.store.session())
            stack.enter_context(answers_per_sync(session))
        if full:
            # A work calendar's events tracked while it was being read were not looked for: not gone.
            report.add(await _apply_gone(session, core, target, window, seen, now,
                                         only=tracked[1] if work else None))
        report.calendars = 1
        report.unchanged = max(read - report.created - report.updated - report.deleted - report.conflicts, 0)
        if resync_reason:
            report.full_resyncs = 1
            await audit.record(session, actor=ACTOR, action="sync.full_resync", practice_id=conn.practice_id,
                               details={"calendar_id": cal.id, "reason": resync_reason})
        checkpoint(core, "sync.applied")
        await _store_cursor(session, cal.id, conn.id, new_cursor, full, now, notes, role=target.view.role,
                            status=conn.status)
        if notes:
            log.warning("calendar read with events skipped or repaired",
                        extra={"calendar_id": cal.id, "connection_id": conn.id, "count": len(notes)})
    return report


async def _tracked_keys(s: AsyncSession, calendar_id: int) -> tuple[set[str], set[str]]:
    """(uids, remote ids) of a work calendar's tracked events: only their series are expanded (the
    expansion runs on the event loop, and a busy work calendar holds hundreds of untracked series)."""
    rows = (await s.execute(select(Appointment.source_uid, Link.remote_id)
                            .join(Link, Link.appointment_id == Appointment.id)
                            .where(Link.calendar_id == calendar_id))).tuples().all()
    return {u for u, _ in rows if u}, {r for _, r in rows if r}


async def _with_occurrences(s: AsyncSession, calendar_id: int, deleted_ids: list[str], ids: object) -> list[str]:
    """A deleted series takes its tracked occurrences with it: the provider reports the series' id
    alone, and an occurrence nobody edited has no deletion of its own."""
    if not deleted_ids or not isinstance(ids, OccurrenceIds):
        return deleted_ids
    gone = set(deleted_ids)
    linked = (await s.scalars(select(Link.remote_id).where(Link.calendar_id == calendar_id,
                                                           Link.remote_id.is_not(None)))).all()
    return [*deleted_ids, *(rid for rid in linked if rid is not None and rid not in gone
                            and ids.series_id(rid) in gone)]


async def _apply_page(
    s: AsyncSession, core: Core, target: _Target, window: Window, items: list[Incoming], deleted_ids: list[str],
    now: datetime, others: _OtherSources,
) -> SyncReport:
    """Plan and apply one page of changes (links and appointments loaded for that page only)."""
    view = target.view
    links = await load_links(
        s, view.id, remote_ids=[i.remote_id for i in items] + list(deleted_ids),
        uids=[i.event.uid for i in items] if view.role in ("source", "work") else (),
    )
    appointments = await load_appointments(s, {lk.appointment_id for g in links.values() for lk in g})
    if view.role == "source" and items:
        for appt in await others.overlapping(s, items):
            appointments.setdefault(appt.id, appt)
    changes = Changes(items, list(deleted_ids), False, window)
    actions = plan(changes, links, appointments, view, target.policy, mirrors=target.mirrors,
                   writable_sources=target.writable_sources)
    report = await apply(s, core, view, actions, policy=target.policy, mirrors=target.mirrors, now=now)
    if report.created or report.updated or report.deleted:
        others.forget()
    return report


async def _apply_gone(
    s: AsyncSession, core: Core, target: _Target, window: Window, seen: _SeenIds, now: datetime,
    only: Container[str] | None = None,
) -> SyncReport:
    """After a full listing: what this calendar's links point at and the listing did not hold (of
    the links named in `only`, when given)."""
    view = target.view
    links = await load_unseen_links(s, view.id, seen.frozen())
    if only is not None:
        links = {rid: group for rid, group in links.items() if rid in only}
    if not links:
        return SyncReport()
    appointments = await load_appointments(s, {lk.appointment_id for g in links.values() for lk in g})
    actions = plan(Changes([], [], True, window), links, appointments, view, target.policy, mirrors=target.mirrors,
                   writable_sources=target.writable_sources)
    return await apply(s, core, view, actions, policy=target.policy, mirrors=target.mirrors, now=now)


#: Read notes kept per calendar (the newest; a feed with 10,000 broken events is told by its count).
MAX_NOTES = 50


async def _store_cursor(
    s: AsyncSession, calendar_id: int, connection_id: int, cursor: str | None, full: bool, now: datetime,
    notes: Sequence[str] = (), *, role: str, status: str = "error",
) -> None:
    """Store the new cursor, in the transaction that applied what was read; raise _CalendarChanged
    (rolling all of it back) when the calendar is no longer syncing in the role it was read in.

    The check is the UPDATE's own condition: on PostgreSQL it waits for a change of the row in
    flight and then reads the row as committed; on SQLite this transaction holds the write lock
    since its first write, so a change committed before then is seen and none can come after."""
    values: dict[str, object] = {"cursor": cursor, "cursor_updated_at": now}
    if full:
        values["last_full_sync_at"] = now
        values["read_notes"] = _capped(list(notes))  # a full read says all there is to say
    elif notes:  # an incremental read adds what it met; the rest stands until the next full read
        before = await s.scalar(select(Calendar.read_notes).where(Calendar.id == calendar_id))
        values["read_notes"] = _capped([*(before or []), *notes])
    stored = await s.execute(update(Calendar).where(Calendar.id == calendar_id, Calendar.role == role,
                                                    Calendar.sync_enabled.is_(True)).values(**values))
    if getattr(stored, "rowcount", 1) != 1:
        raise _CalendarChanged(calendar_id)
    await s.execute(update(Connection).where(Connection.id == connection_id).values(_succeeded(now, status)))


def _succeeded(now: datetime, status: str) -> dict[Any, Any]:
    """A successful sync's bookkeeping on its connection; an `error` status (as read when the sync
    started) goes back to `active`. Only then is the status in the UPDATE: chat answers depend on a
    connection's status, not on its bookkeeping (sync.store.database.ANSWER_COLUMNS), so a sync that
    changes nothing leaves every kept answer alone. A connection's syncs run one at a time, so its
    status does not become `error` during one."""
    values: dict[Any, Any] = {Connection.last_success_at: now, Connection.last_error: None}
    if status != "active":
        values[Connection.status] = case((Connection.status == "error", "active"), else_=Connection.status)
    return values


def _capped(notes: list[str]) -> list[str]:
    if len(notes) <= MAX_NOTES:
        return notes
    return [*notes[: MAX_NOTES - 1], f"... and {len(notes) - MAX_NOTES + 1} more"]


def clip_words(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, with "…" when cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(None, 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip(" ,;:") + "…"


async def _record_failure(core: Core, connection_id: int, exc: Exception) -> None:
    """Remember why a connection failed (no PHI: the error class and the adapter's message).

    An error that is not a ProviderError is a bug or an input no adapter foresaw: the connection
    shows status "error" until its next good sync, so `connection list` does not call it active."""
    message = f"{type(exc).__name__}: {clip_words(str(exc), 400)}"
    log.warning("sync failed", extra={"connection_id": connection_id, "error": type(exc).__name__,
                                      "reason": message})
    expired: ExpiredConnection | None = None
    async with core.store.session() as s:
        conn = await s.get(Connection, connection_id)
        if conn is None:
            return
        conn.last_error, conn.last_error_at = message, core.clock()
        if isinstance(exc, AuthExpired) and conn.status != "auth_expired":
            await audit.record(s, actor=ACTOR, action="connection.auth_expired", practice_id=conn.practice_id,
                               details={"connection_id": conn.id})
            conn.status = "auth_expired"
            expired = ExpiredConnection.of(conn)
        elif not isinstance(exc, ProviderError) and conn.status == "active":
            conn.status = "error"
    if expired is not None:  # after the commit that marked it: the card is sent once per expiry
        await tell_reconnect(core, expired)
