"""Decide what a sync must do: a pure function from (remote changes, links, appointments) to actions.

Nothing here does I/O. The engine loads plain snapshots (`LinkView`, `Canonical`, `CalendarView`),
calls `plan`, and `sync.engine.apply` turns the actions into database rows and outbox operations.

Rules, by the role of the calendar being read:

- **source**: a new item imports a new appointment; a changed item updates it (the source is the
  truth); a cancelled or deleted item cancels it; an item whose content hash equals the link's is
  not a change (our own echo or a touch). A new or moved appointment overlapping another active
  appointment of the same practitioner is a double booking, whichever source booked either.
- **mirror**: only our copies matter (items with a link). A copy whose content differs from both
  the link's hash and what we would push now was edited by hand; the practice's `mirror_edits`
  decides: `card` (a conflict for staff, never overwritten), `follow` (a practitioner's move of a
  copy in their own calendar reschedules the appointment, and so its source) or `keep` (the copy
  is put back). `follow` and `keep` apply only to appointments whose source clinicbot may change:
  booked in clinicbot or on a writable calendar; a booking platform's bookings (the truth), a
  read-only feed's and a series' always get the card. A copy deleted by hand is repaired per policy
  in every mode: deleting an event is not taken as cancelling the patient's appointment.
- **busy**: read only for conflict checks; no actions.
- **work**: only tracked events (items with a link) are planned, as a source's; nothing else.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sync.contract.items import EventData, Window
from sync.engine.projection import mirror_uid, project

__all__ = [
    "ACTIVE",
    "MIRROR_EDITS",
    "Action",
    "CalendarView",
    "CancelOrDelete",
    "Canonical",
    "Changes",
    "DropLink",
    "FollowMirror",
    "ImportNew",
    "Incoming",
    "LinkView",
    "OverlapIndex",
    "Policy",
    "PushToMirrors",
    "RaiseConflict",
    "RefreshLink",
    "RepairMirror",
    "RestoreMirror",
    "UpdateFromSource",
    "canonical_from_event",
    "mirror_targets",
    "plan",
]

ACTIVE = ("confirmed", "tentative")
MirrorEdits = Literal["card", "follow", "keep"]
#: The choices of `Policy.mirror_edits`, in the order help lists them.
MIRROR_EDITS: tuple[MirrorEdits, ...] = ("card", "follow", "keep")
SourceKey = tuple[str, str]  # (uid, recurrence_key) on the calendar being planned


@dataclass(frozen=True, slots=True)
class Policy:
    """Practice-wide sync policies (Practice.settings)."""

    cancel_mode: Literal["cancel", "delete"] = "cancel"
    deleted_mirror: Literal["recreate", "leave"] = "recreate"
    busy_word: str = "Busy"
    #: A hand edit of a mirror copy: a staff card, the calendar wins, or the booking wins.
    mirror_edits: MirrorEdits = "card"

    @classmethod
    def from_settings(cls, settings: Mapping[str, object] | None, mirror_edits: str | None = None) -> Policy:
        s = settings or {}
        cancel: Literal["cancel", "delete"] = "delete" if s.get("cancel_mode") == "delete" else "cancel"
        deleted: Literal["recreate", "leave"] = "leave" if s.get("deleted_mirror") == "leave" else "recreate"
        word = s.get("busy_word")
        edits: MirrorEdits = mirror_edits if mirror_edits in ("follow", "keep") else "card"  # type: ignore[assignment]
        return cls(cancel, deleted, word.strip() if isinstance(word, str) and word.strip() else "Busy", edits)

    @classmethod
    def of(cls, practice: Any | None) -> Policy:
        """The policy of a Practice row (None: the defaults)."""
        if practice is None:
            return cls()
        return cls.from_settings(practice.settings, getattr(practice, "mirror_edits", None))


@dataclass(frozen=True, slots=True)
class CalendarView:
    id: int
    role: str  # source | mirror | busy
    projection: str = "initials"
    practitioner_id: int | None = None
    practice_id: int = 0
    read_only: bool = False
    show_as_free: bool = False
    sync_enabled: bool = True
    connection_id: int = 0


#: Link state of a source copy while a chat change (source_reschedule/source_cancel) is queued.
SOURCE_PENDING = "source_pending"


@dataclass(frozen=True, slots=True)
class LinkView:
    id: int
    appointment_id: int
    calendar_id: int
    remote_id: str | None
    etag: str | None
    content_hash: str | None
    state: str = "ok"


@dataclass(frozen=True, slots=True)
class Canonical:
    """A snapshot of one canonical appointment (fields the sync reads)."""

    id: int
    practitioner_id: int | None
    start: datetime
    end: datetime
    status: str = "confirmed"
    version: int = 1
    title: str | None = None
    client_name: str | None = None
    client_email: str | None = None
    notes: str | None = None
    service: str | None = None
    location_text: str | None = None
    tzid: str | None = None
    all_day: bool = False
    rrule: str | None = None
    exdates: tuple[datetime, ...] = ()
    rdates: tuple[datetime, ...] = ()
    transparent: bool = False
    source_calendar_id: int | None = None
    source_uid: str | None = None
    recurrence_key: str = ""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True, slots=True)
class Incoming:
    """One remote item (or one expanded occurrence of a series) as the planner sees it."""

    remote_id: str
    etag: str | None
    event: EventData
    recurrence_key: str = ""
    content_hash: str = ""
    #: Set on occurrences produced by expanding a series: the series item's remote id.
    series_remote_id: str | None = None

    def hash(self) -> str:
        return self.content_hash or self.event.content_hash()


@dataclass(slots=True)
class Changes:
    items: list[Incoming] = field(default_factory=list)
    deleted_ids: list[str] = field(default_factory=list)
    full: bool = False
    window: Window | None = None


# ---- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportNew:
    """A new item on a source calendar becomes a new canonical appointment."""

    remote_id: str
    etag: str | None
    content_hash: str
    event: EventData
    recurrence_key: str
    practitioner_id: int | None


@dataclass(frozen=True, slots=True)
class UpdateFromSource:
    appointment_id: int
    remote_id: str
    etag: str | None
    content_hash: str
    event: EventData
    kind: Literal["rescheduled", "updated"]


@dataclass(frozen=True, slots=True)
class PushToMirrors:
    """Create or update the mirror copies of one appointment (by id, or by source key when new)."""

    appointment_id: int | None
    source_key: SourceKey | None
    calendar_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CancelOrDelete:
    """The source deleted or cancelled it: canonical -> cancelled, mirror copies per cancel_mode."""

    appointment_id: int
    reason: Literal["deleted", "cancelled"]
    mirror_mode: Literal["cancel", "delete"]
    remote_id: str
    etag: str | None = None
    content_hash: str | None = None


@dataclass(frozen=True, slots=True)
class RaiseConflict:
    kind: Literal["mirror_edited", "double_booking"]
    appointment_id: int | None
    calendar_id: int
    source_key: SourceKey | None = None
    other_appointment_id: int | None = None
    #: The other booking is new in the same page (no id yet): its (uid, recurrence key).
    other_source_key: SourceKey | None = None
    link_id: int | None = None
    etag: str | None = None
    content_hash: str | None = None
    remote_start: datetime | None = None
    remote_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class FollowMirror:
    """A practitioner moved the copy in their own calendar: the appointment moves there (mirror_edits=follow)."""

    appointment_id: int
    calendar_id: int
    link_id: int
    etag: str | None
    content_hash: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class RestoreMirror:
    """A copy edited by hand is put back as booked, without a card (mirror_edits=keep, or a follow
    of an edit that is not a move)."""

    appointment_id: int
    calendar_id: int
    link_id: int
    etag: str | None
    content_hash: str
    remote_start: datetime
    remote_end: datetime


@dataclass(frozen=True, slots=True)
class RepairMirror:
    """A mirror copy was deleted by hand: recreate it, or leave it gone (policy)."""

    appointment_id: int
    calendar_id: int
    link_id: int
    mode: Literal["recreate", "leave"]


@dataclass(frozen=True, slots=True)
class RefreshLink:
    """Same content, new etag (our own write, or a touch): bookkeeping only, not a change."""

    link_id: int
    etag: str | None
    content_hash: str


@dataclass(frozen=True, slots=True)
class DropLink:
    """The remote copy is gone and nothing should replace it."""

    link_id: int


Action = (
    ImportNew | UpdateFromSource | PushToMirrors | CancelOrDelete | RaiseConflict | RepairMirror | RefreshLink
    | DropLink | FollowMirror | RestoreMirror
)


# ---- the planner -------------------------------------------------------------------------------


def plan(
    remote_changes: Changes,
    links: Mapping[str, Sequence[LinkView]],
    appointments: Mapping[int, Canonical],
    calendar: CalendarView,
    policy: Policy,
    *,
    mirrors: Sequence[CalendarView] = (),
    writable_sources: Container[int] = (),
) -> list[Action]:
    """Actions for one calendar's changes. `links` is keyed by remote id (this calendar's links);
    `appointments` holds every appointment those links point at plus, for double-booking checks,
    the active appointments of the practitioner overlapping the changed items. `writable_sources`
    are the source calendars clinicbot may change (not a booking platform, not read-only): only
    their appointments follow or keep hand edits of mirror copies."""
    if not calendar.sync_enabled or calendar.role not in ("source", "mirror", "work"):
        return []  # busy calendars are read live (free/busy), never planned
    if calendar.role == "work":
        return _plan_tracked(remote_changes, links, appointments, calendar, policy)
    if calendar.role == "mirror":
        return list(_plan_mirror(remote_changes, links, appointments, calendar, policy, writable_sources))
    return list(_plan_source(remote_changes, links, appointments, calendar, policy, mirrors))


def _plan_tracked(
    changes: Changes,
    links: Mapping[str, Sequence[LinkView]],
    appointments: Mapping[int, Canonical],
    calendar: CalendarView,
    policy: Policy,
) -> list[Action]:
    """A work calendar: only the events someone tracks (those with a link) are planned, as a source's
    bookings are; every other event is read live for the agenda and never becomes a row.

    A tracked occurrence of a series (its link names the occurrence's own id, its activity the
    occurrence's recurrence key) is gone when its series is read again without it: a new EXDATE,
    a shortened rule, or the whole series moved to other times."""
    keys = {(a.source_uid or "", a.recurrence_key) for group in links.values() for lk in group
            if (a := appointments.get(lk.appointment_id)) is not None}
    items = [i for i in changes.items if i.remote_id in links or (i.event.uid, i.recurrence_key) in keys]
    tracked = Changes(items, [d for d in changes.deleted_ids if d in links], changes.full, changes.window)
    # Tracked activities are not double bookings of the practice's appointments: no conflict cards.
    actions: list[Action] = [a for a in _plan_source(tracked, links, appointments, calendar, policy, ())
                             if not isinstance(a, RaiseConflict)]
    expanded = {i.event.uid for i in changes.items if i.series_remote_id is not None}
    fresh = {(i.event.uid, i.recurrence_key) for i in changes.items}
    cancelled = {a.appointment_id for a in actions if isinstance(a, CancelOrDelete)}
    for group in links.values():
        for lk in group:
            appt = appointments.get(lk.appointment_id)
            if (appt is not None and appt.recurrence_key and appt.active and appt.id not in cancelled
                    and appt.source_uid in expanded and (appt.source_uid, appt.recurrence_key) not in fresh
                    and _in_window(appt, changes.window)):
                cancelled.add(appt.id)
                actions.append(CancelOrDelete(appt.id, "deleted", policy.cancel_mode, lk.remote_id or ""))
    return actions


def mirror_targets(practitioner_id: int | None, mirrors: Sequence[CalendarView]) -> tuple[int, ...]:
    """Mirror calendars that should hold a copy of an appointment of this practitioner."""
    return tuple(
        m.id
        for m in mirrors
        if m.role == "mirror" and m.sync_enabled and (m.practitioner_id is None or m.practitioner_id == practitioner_id)
    )


def _plan_source(
    changes: Changes,
    links: Mapping[str, Sequence[LinkView]],
    appointments: Mapping[int, Canonical],
    calendar: CalendarView,
    policy: Policy,
    mirrors: Sequence[CalendarView],
) -> Iterable[Action]:
    targets = mirror_targets(calendar.practitioner_id, mirrors)
    page: list[Action] = []
    # A booking's identity on its source is (UID, recurrence key); remote ids only say where it lives.
    by_key: dict[SourceKey, LinkView] = {}
    for group in links.values():
        for lk in group:
            a = appointments.get(lk.appointment_id)
            if a is not None:
                by_key[(a.source_uid or "", a.recurrence_key)] = lk
    seen_remote = {inc.remote_id for inc in changes.items}
    fresh: set[SourceKey] = set()
    expanded_from: set[str] = set()
    for inc in changes.items:
        key = (inc.event.uid, inc.recurrence_key)
        fresh.add(key)
        link = by_key.get(key)
        if inc.series_remote_id is not None:
            expanded_from.add(inc.series_remote_id)
            if link is not None and link.remote_id not in (inc.remote_id, None):
                continue  # an override item owns this occurrence; the bare series does not
        for action in _source_item(inc, link, appointments, calendar, policy, targets):
            page.append(action)
            yield action
    # Occurrences a re-expanded series no longer has (a new EXDATE, a shortened RRULE).
    for key, link in by_key.items():
        appt = appointments[link.appointment_id]
        if link.remote_id in expanded_from and key not in fresh and appt.active and _in_window(appt, changes.window):
            yield CancelOrDelete(appt.id, "deleted", policy.cancel_mode, link.remote_id or "")

    gone = list(changes.deleted_ids)
    if changes.full:
        gone += [rid for rid in links if rid not in seen_remote]
    for remote_id in dict.fromkeys(gone):
        if remote_id in seen_remote:
            continue
        for link in links.get(remote_id, ()):
            gone_appt = appointments.get(link.appointment_id)
            if gone_appt is None or not gone_appt.active:
                continue
            if changes.full and remote_id not in changes.deleted_ids and not _in_window(gone_appt, changes.window):
                continue  # outside the window a full listing says nothing about it
            yield CancelOrDelete(gone_appt.id, "deleted", policy.cancel_mode, remote_id)
    yield from _double_bookings(page, appointments, calendar)


def _double_bookings(
    page: Sequence[Action], appointments: Mapping[int, Canonical], calendar: CalendarView
) -> Iterable[RaiseConflict]:
    """Every new or moved booking of this page that overlaps another active appointment of the same
    practitioner: from another source, from this one (two bookings in one feed are a double booking
    too), or another booking of this same page. Each pair is raised once; bookings are compared as
    they are after this page (a booking moved out of the way in the same page is no conflict)."""
    pid = calendar.practitioner_id
    if pid is None:
        return
    after: list[tuple[Canonical, SourceKey | None, bool]] = []  # (state after the page, key if new, checks)
    touched: set[int] = set()
    for a in page:
        if isinstance(a, ImportNew):
            placeholder = -(len(after) + 1)
            after.append((canonical_from_event(placeholder, a.event, practitioner_id=pid,
                                               source_calendar_id=calendar.id, recurrence_key=a.recurrence_key),
                          (a.event.uid, a.recurrence_key), True))
        elif isinstance(a, UpdateFromSource) and a.appointment_id in appointments:
            touched.add(a.appointment_id)
            old = appointments[a.appointment_id]
            after.append((canonical_from_event(a.appointment_id, a.event, practitioner_id=old.practitioner_id,
                                               source_calendar_id=calendar.id, recurrence_key=old.recurrence_key),
                          None, a.kind == "rescheduled"))
        elif isinstance(a, CancelOrDelete):
            touched.add(a.appointment_id)
    stored = OverlapIndex(a for a in appointments.values() if a.active and a.id not in touched)
    fresh = OverlapIndex(c for c, _, _ in after if c.active)
    position = {c.id: i for i, (c, _, _) in enumerate(after)}
    for i, (mine, key, checks) in enumerate(after):
        if not checks or not mine.active or mine.all_day or mine.practitioner_id is None:
            continue
        own_id = mine.id if key is None else None
        for other in stored.overlapping(mine.practitioner_id, mine.start, mine.end):
            if other.id != mine.id:
                yield RaiseConflict("double_booking", own_id, calendar.id, source_key=key,
                                    other_appointment_id=other.id)
        for other in fresh.overlapping(mine.practitioner_id, mine.start, mine.end):
            j = position[other.id]
            if j == i or (after[j][2] and j < i) or (key is not None and after[j][1] == key):
                continue  # itself (or its own repeat), or a pair the earlier booking of this page raised
            other_key = after[j][1]
            yield RaiseConflict("double_booking", own_id, calendar.id, source_key=key,
                                other_appointment_id=other.id if other_key is None else None,
                                other_source_key=other_key)


def _source_item(
    inc: Incoming,
    link: LinkView | None,
    appointments: Mapping[int, Canonical],
    calendar: CalendarView,
    policy: Policy,
    targets: tuple[int, ...],
) -> Iterable[Action]:
    h = inc.hash()
    ev = inc.event
    if link is None:
        if ev.status == "cancelled":
            return  # a booking we never saw, already cancelled: nothing to import
        key = (ev.uid, inc.recurrence_key)
        yield ImportNew(inc.remote_id, inc.etag, h, ev, inc.recurrence_key, calendar.practitioner_id)
        if targets:
            yield PushToMirrors(None, key, targets)
        return
    appt = appointments[link.appointment_id]
    if h == link.content_hash:
        if inc.etag != link.etag:
            yield RefreshLink(link.id, inc.etag, h)
        return
    if link.state == SOURCE_PENDING:
        # A change made in chat is on its way to the source; the source's state is read again
        # once that write has landed (the outbox clears the mark), so nothing is undone meanwhile.
        return
    if ev.status == "cancelled":
        if appt.active:
            yield CancelOrDelete(appt.id, "cancelled", policy.cancel_mode, inc.remote_id, inc.etag, h)
        else:
            yield RefreshLink(link.id, inc.etag, h)
        return
    moved = (ev.start, ev.end) != (appt.start, appt.end)
    yield UpdateFromSource(appt.id, inc.remote_id, inc.etag, h, ev, "rescheduled" if moved else "updated")
    if targets:
        yield PushToMirrors(appt.id, None, targets)


def _editable(appt: Canonical, writable_sources: Container[int]) -> bool:
    """May a hand edit of a copy change (or be ignored for) this appointment? Not a booking
    platform's or a feed's booking, not a series or one visit of it."""
    if appt.rrule is not None or appt.recurrence_key or appt.all_day:
        return False
    return appt.source_calendar_id is None or appt.source_calendar_id in writable_sources


def _hand_edit(
    inc: Incoming, link: LinkView, appt: Canonical, calendar: CalendarView, policy: Policy,
    writable_sources: Container[int],
) -> Action:
    """What a hand edit of one copy becomes under the practice's mirror_edits."""
    ev, h = inc.event, inc.hash()
    mode = policy.mirror_edits if _editable(appt, writable_sources) and ev.status != "cancelled" else "card"
    own = calendar.practitioner_id is not None and calendar.practitioner_id == appt.practitioner_id
    moved = (ev.start, ev.end) != (appt.start, appt.end) and ev.end > ev.start and not ev.all_day
    # A cancelled visit is not moved by a move of its copy (made while the cancellation was on its way,
    # say): the copy is put back, showing the cancellation.
    active = appt.status in ("confirmed", "tentative")
    if mode == "follow" and own and moved and active:
        return FollowMirror(appt.id, calendar.id, link.id, inc.etag, h, ev.start, ev.end)
    if mode == "keep" or (mode == "follow" and own):
        # The calendar cannot carry a renamed or re-described copy back to the appointment: put it back.
        return RestoreMirror(appt.id, calendar.id, link.id, inc.etag, h, ev.start, ev.end)
    return RaiseConflict(
        "mirror_edited", appt.id, calendar.id, link_id=link.id, etag=inc.etag, content_hash=h,
        remote_start=ev.start, remote_end=ev.end,
    )


def _plan_mirror(
    changes: Changes,
    links: Mapping[str, Sequence[LinkView]],
    appointments: Mapping[int, Canonical],
    calendar: CalendarView,
    policy: Policy,
    writable_sources: Container[int] = (),
) -> Iterable[Action]:
    seen: set[str] = set()
    for inc in changes.items:
        seen.add(inc.remote_id)
        for link in links.get(inc.remote_id, ()):
            appt = appointments.get(link.appointment_id)
            if appt is None:
                continue
            h = inc.hash()
            if h == link.content_hash:
                if inc.etag != link.etag:
                    yield RefreshLink(link.id, inc.etag, h)
                continue
            wanted = project(appt, calendar, policy, mirror_uid(appt.id, calendar.id)).content_hash()
            if h == wanted:  # our write landed but its bookkeeping did not (crash, concurrent sync)
                yield RefreshLink(link.id, inc.etag, h)
            elif link.state != "conflict":
                yield _hand_edit(inc, link, appt, calendar, policy, writable_sources)
            else:
                yield RefreshLink(link.id, inc.etag, h)  # still in conflict; remember the latest hand edit
    gone = list(changes.deleted_ids)
    if changes.full:
        gone += [rid for rid in links if rid not in seen]
    for remote_id in dict.fromkeys(gone):
        if remote_id in seen:
            continue
        for link in links.get(remote_id, ()):
            appt = appointments.get(link.appointment_id)
            if appt is None or link.remote_id is None:
                continue
            if changes.full and remote_id not in changes.deleted_ids and not _in_window(appt, changes.window):
                continue
            wrong_practitioner = calendar.practitioner_id not in (None, appt.practitioner_id)
            if link.state in ("deleting", "gone") or not appt.active or wrong_practitioner:
                yield DropLink(link.id)
            else:
                yield RepairMirror(appt.id, calendar.id, link.id, policy.deleted_mirror)


def _in_window(appt: Canonical, window: Window | None) -> bool:
    return window is None or appt.rrule is not None or window.overlaps(appt.start, appt.end)


class OverlapIndex:
    """Active appointments per practitioner sorted by start, for double-booking lookups."""

    def __init__(self, appts: Iterable[Canonical]) -> None:
        by: dict[int | None, list[Canonical]] = defaultdict(list)
        for a in appts:
            by[a.practitioner_id].append(a)
        self._starts: dict[int | None, list[datetime]] = {}
        self._appts: dict[int | None, list[Canonical]] = {}
        self._longest: dict[int | None, float] = {}
        for pid, lst in by.items():
            lst.sort(key=lambda a: a.start)
            self._appts[pid] = lst
            self._starts[pid] = [a.start for a in lst]
            self._longest[pid] = max((a.end - a.start).total_seconds() for a in lst)

    def overlapping(self, practitioner_id: int | None, start: datetime, end: datetime) -> list[Canonical]:
        if practitioner_id is None or practitioner_id not in self._appts:
            return []
        starts, appts = self._starts[practitioner_id], self._appts[practitioner_id]
        hi = bisect.bisect_left(starts, end)
        out = []
        i = hi - 1
        longest = self._longest[practitioner_id]
        while i >= 0 and (start - starts[i]).total_seconds() < longest:
            a = appts[i]
            if a.start < end and a.end > start and not a.all_day:
                out.append(a)
            i -= 1
        return out


def canonical_from_event(
    appointment_id: int, event: EventData, *, practitioner_id: int | None, version: int = 1,
    source_calendar_id: int | None = None, recurrence_key: str = "",
) -> Canonical:
    """The canonical snapshot a source event maps to (used by the planner's tests and by apply)."""
    return Canonical(
        id=appointment_id, practitioner_id=practitioner_id, start=event.start, end=event.end,
        status="cancelled" if event.status == "cancelled" else event.status, version=version,
        title=event.summary or None, client_name=event.client_name, client_email=event.client_email,
        notes=event.description or None, service=event.service, location_text=event.location or None,
        tzid=event.tzid, all_day=event.all_day, rrule=event.rrule, exdates=tuple(event.exdates),
        rdates=tuple(event.rdates), transparent=event.transparent, source_calendar_id=source_calendar_id,
        source_uid=event.uid, recurrence_key=recurrence_key,
    )
