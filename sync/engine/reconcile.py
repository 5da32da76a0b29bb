"""Perform one outbox operation: bring one remote copy in line with the appointment as it is now.

An op names a (appointment, calendar) pair; what to write is decided when it runs, from the
current canonical record. That is what makes retries and re-deliveries safe:

- a create uses the copy's deterministic UID as its idempotency key, so a retry after a crash
  gets AlreadyExists, and the existing copy is fetched and linked, never duplicated;
- an update whose etag is stale refetches: if the remote already holds what we want (our write
  landed but its bookkeeping did not) it is adopted; if it holds a hand edit, that is a conflict
  and nothing is overwritten;
- an update of a copy that is gone follows the practice's deleted_mirror policy;
- a copy with no recorded remote id whose appointment is cancelled is "never copied" only when no
  earlier attempt at it may have landed unrecorded (`maybe_written`, from the worker): otherwise
  the create's key finds that copy (AlreadyExists), which is then marked cancelled or deleted per
  cancel_mode instead of being left behind as a live copy of a cancelled visit.

The function returns an `Outcome`; it never writes to the database itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sync.contract import AlreadyExists, CalendarProvider, NotFound, Refused, WrongEtag
from sync.contract.items import EventData, RemoteItem
from sync.engine.plan import CalendarView, Canonical, LinkView, Policy, mirror_targets
from sync.engine.projection import mirror_uid, project

__all__ = ["Outcome", "desired_copy", "reconcile_mirror", "reconcile_source"]


@dataclass(slots=True)
class Outcome:
    """What happened remotely, for the worker to record."""

    result: Literal["linked", "unlinked", "conflict", "gone", "noop", "refused"]
    item: RemoteItem | None = None
    note: str = ""
    steps: list[str] = field(default_factory=list)
    #: The source had changed since our last read: keep the link's old hash so the next sync
    #: imports those changes instead of taking our write for the whole truth.
    source_moved_on: bool = False


def desired_copy(appt: Canonical | None, cal: CalendarView, policy: Policy) -> EventData | None:
    """The copy a mirror calendar should hold now, or None when it should hold none."""
    if appt is None or not cal.sync_enabled or cal.id not in mirror_targets(appt.practitioner_id, [cal]):
        return None
    if appt.status == "cancelled" and policy.cancel_mode == "delete":
        return None
    return project(appt, cal, policy, mirror_uid(appt.id, cal.id))


async def reconcile_mirror(
    provider: CalendarProvider, appt: Canonical | None, cal: CalendarView, link: LinkView | None, policy: Policy,
    *, maybe_written: bool = False,
) -> Outcome:
    """Create, update or delete one mirror copy so it matches `appt` projected for `cal`.

    `maybe_written`: an earlier attempt at this copy may have created it without its remote id being
    recorded (a crash after the write, a timeout); a copy that should not stay is then looked for.
    """
    want = desired_copy(appt, cal, policy)
    if link is not None and link.state == "conflict":
        return Outcome("noop", note="copy edited by hand; waiting for staff to decide")
    remote_id = link.remote_id if link is not None else None
    if want is None:
        if remote_id is None:
            if maybe_written and appt is not None and cal.sync_enabled and not cal.read_only:
                return await _remove_unrecorded(provider, project(appt, cal, policy, mirror_uid(appt.id, cal.id)))
            return Outcome("unlinked")
        return await _delete(provider, remote_id, link.etag if link else None)
    if remote_id is None:
        if link is not None and link.state == "gone":
            return Outcome("noop", note="copy deleted by hand; policy leaves it")
        if appt is not None and appt.status == "cancelled" and not maybe_written:
            return Outcome("unlinked")  # never copied, now cancelled: nothing to show
        # (cancelled after a create that may have landed: that copy is found by its key and marked cancelled)
        return await _create(provider, want)
    assert link is not None
    want_hash = want.content_hash()
    if link.content_hash == want_hash:
        return Outcome("noop")
    try:
        return Outcome("linked", await provider.update(remote_id, want, link.etag), steps=["update"])
    except WrongEtag:
        try:
            current = await provider.get(remote_id)
        except NotFound:  # deleted by hand after our last read: its etag moved on with the deletion
            return await _missing(provider, want, policy, ["update", "get:missing"])
        have = current.event.content_hash()
        if have == want_hash:
            return Outcome("linked", current, steps=["update", "get:adopted"])
        if have != link.content_hash:
            return Outcome("conflict", current, note="copy edited by hand", steps=["update", "get"])
        return Outcome("linked", await provider.update(remote_id, want, current.etag),
                       steps=["update", "get", "update"])
    except NotFound:
        return await _missing(provider, want, policy, ["update:missing"])


async def _missing(provider: CalendarProvider, want: EventData, policy: Policy, steps: list[str]) -> Outcome:
    """A linked copy that is gone from the calendar: re-create it, unless the practice leaves it."""
    if policy.deleted_mirror == "leave":
        return Outcome("gone", note="copy deleted by hand; policy leaves it", steps=steps)
    outcome = await _create(provider, want)
    outcome.steps[:0] = steps
    return outcome


async def _create(provider: CalendarProvider, want: EventData) -> Outcome:
    try:
        return Outcome("linked", await provider.create(want, want.uid), steps=["create"])
    except AlreadyExists as taken:
        existing = await provider.get(taken.remote_id or want.uid)
        if existing.event.content_hash() == want.content_hash():
            return Outcome("linked", existing, steps=["create", "get:adopted"])
        return Outcome("linked", await provider.update(existing.remote_id, want, existing.etag),
                       steps=["create", "get", "update"])


async def _remove_unrecorded(provider: CalendarProvider, probe: EventData) -> Outcome:
    """Delete the copy an unrecorded earlier create may have made. The contract finds a copy only by its
    create key, so `probe` is created with it: AlreadyExists names the earlier copy; a copy the probe
    made itself (the earlier attempt never landed) goes the same way."""
    try:
        made = await provider.create(probe, probe.uid)
        steps = ["create:probe"]
    except AlreadyExists as taken:
        made = await provider.get(taken.remote_id or probe.uid)
        steps = ["create:probe", "get"]
    outcome = await _delete(provider, made.remote_id, made.etag)
    outcome.steps[:0] = steps
    return outcome


async def _delete(provider: CalendarProvider, remote_id: str, etag: str | None) -> Outcome:
    try:
        await provider.delete(remote_id, etag)
    except NotFound:
        return Outcome("unlinked", steps=["delete:missing"])
    except WrongEtag:
        # Only our copies are deleted, and only for cancelled or moved appointments: the newest
        # version of the copy goes too.
        try:
            current = await provider.get(remote_id)
            await provider.delete(remote_id, current.etag)
        except NotFound:
            pass
        return Outcome("unlinked", steps=["delete", "get", "delete"])
    return Outcome("unlinked", steps=["delete"])


async def reconcile_source(
    provider: CalendarProvider, appt: Canonical | None, link: LinkView | None, op: str
) -> Outcome:
    """Write a change made in chat (reschedule, cancel) back to the booking's source calendar."""
    if appt is None or link is None or link.remote_id is None:
        return Outcome("refused", note="the appointment has no source copy to change")
    if provider.capabilities.read_only:
        return Outcome("refused", note="the source calendar is read-only")
    try:
        current = await provider.get(link.remote_id)
    except NotFound:
        return Outcome("noop", note="gone at the source; the next sync cancels it")
    if current.event.rrule and appt.recurrence_key:
        return Outcome("refused", note="one occurrence of a series cannot be changed at its source")
    if op == "source_cancel" or appt.status == "cancelled":
        want = current.event.with_changes(status="cancelled")
    else:
        want = current.event.with_changes(start=appt.start, end=appt.end, tzid=appt.tzid or current.event.tzid)
    moved_on = current.event.content_hash() != link.content_hash
    if want.content_hash() == current.event.content_hash():
        return Outcome("linked", current, steps=["get"], source_moved_on=moved_on)
    try:
        written = await provider.update(link.remote_id, want, current.etag)
        return Outcome("linked", written, steps=["get", "update"], source_moved_on=moved_on)
    except Refused as exc:
        return Outcome("refused", note=str(exc)[:200])
