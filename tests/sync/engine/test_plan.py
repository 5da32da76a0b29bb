"""plan(): the pure planner, by example and by property."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.contract.items import EventData, Window
from sync.engine.plan import (
    CalendarView,
    CancelOrDelete,
    Canonical,
    Changes,
    DropLink,
    ImportNew,
    Incoming,
    LinkView,
    Policy,
    PushToMirrors,
    RaiseConflict,
    RefreshLink,
    RepairMirror,
    UpdateFromSource,
    canonical_from_event,
    plan,
)
from sync.engine.projection import mirror_uid, project

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
SRC = CalendarView(1, "source", practitioner_id=7)
MIR = CalendarView(2, "mirror", practitioner_id=7, connection_id=2)
POLICY = Policy()
WINDOW = Window(T0 - timedelta(days=30), T0 + timedelta(days=180))


def ev(uid: str, hours: int = 0, **kw: object) -> EventData:
    return EventData(uid=uid, summary="Physio", start=T0 + timedelta(hours=hours),
                     end=T0 + timedelta(hours=hours, minutes=30), **kw)  # type: ignore[arg-type]


def known(uid: str, appt_id: int, event: EventData, cal: int = 1) -> tuple[LinkView, Canonical]:
    appt = canonical_from_event(appt_id, event, practitioner_id=7, source_calendar_id=1)
    return LinkView(appt_id * 10, appt_id, cal, uid, '"1"', event.content_hash()), appt


def test_new_item_imports_and_pushes() -> None:
    actions = plan(Changes([Incoming("a", '"1"', ev("a"))], window=WINDOW), {}, {}, SRC, POLICY, mirrors=[MIR])
    assert [type(a) for a in actions] == [ImportNew, PushToMirrors]
    assert actions[1] == PushToMirrors(None, ("a", ""), (2,))


def test_echo_is_not_a_change_but_a_new_etag_is_remembered() -> None:
    link, appt = known("a", 1, ev("a"))
    same = Changes([Incoming("a", '"1"', ev("a"))], window=WINDOW)
    assert plan(same, {"a": [link]}, {1: appt}, SRC, POLICY, mirrors=[MIR]) == []
    touched = Changes([Incoming("a", '"2"', ev("a"))], window=WINDOW)
    assert plan(touched, {"a": [link]}, {1: appt}, SRC, POLICY) == [RefreshLink(10, '"2"', link.content_hash or "")]


def test_moved_item_reschedules() -> None:
    link, appt = known("a", 1, ev("a"))
    actions = plan(Changes([Incoming("a", '"2"', ev("a", 2))], window=WINDOW), {"a": [link]}, {1: appt}, SRC, POLICY,
                   mirrors=[MIR])
    assert isinstance(actions[0], UpdateFromSource) and actions[0].kind == "rescheduled"
    assert actions[1] == PushToMirrors(1, None, (2,))


def test_deleted_and_cancelled_items_cancel() -> None:
    la, aa = known("a", 1, ev("a"))
    lb, ab = known("b", 2, ev("b", 3))
    changes = Changes([Incoming("b", '"2"', ev("b", 3, status="cancelled"))], deleted_ids=["a"], window=WINDOW)
    actions = plan(changes, {"a": [la], "b": [lb]}, {1: aa, 2: ab}, SRC, Policy(cancel_mode="delete"))
    assert {(a.appointment_id, a.reason, a.mirror_mode) for a in actions if isinstance(a, CancelOrDelete)} == {
        (1, "deleted", "delete"), (2, "cancelled", "delete")}


def test_full_listing_missing_item_cancels_only_inside_window() -> None:
    la, aa = known("a", 1, ev("a"))
    lf, af = known("f", 2, ev("f", 24 * 400))
    actions = plan(Changes([], full=True, window=WINDOW), {"a": [la], "f": [lf]}, {1: aa, 2: af}, SRC, POLICY)
    assert actions == [CancelOrDelete(1, "deleted", "cancel", "a")]


def test_double_booking_against_another_source() -> None:
    other = canonical_from_event(5, ev("x", 0), practitioner_id=7, source_calendar_id=99)
    actions = plan(Changes([Incoming("a", None, ev("a"))], window=WINDOW), {}, {5: other}, SRC, POLICY)
    assert RaiseConflict("double_booking", None, 1, source_key=("a", ""), other_appointment_id=5) in actions


def _mirror_link(appt: Canonical, content: EventData) -> LinkView:
    return LinkView(30, appt.id, 2, "m1", '"1"', content.content_hash())


def test_mirror_hand_edit_is_a_conflict_and_our_echo_is_not() -> None:
    appt = canonical_from_event(1, ev("a"), practitioner_id=7, source_calendar_id=1)
    copy = project(appt, MIR, POLICY, mirror_uid(1, 2))
    link = _mirror_link(appt, copy)
    echo = plan(Changes([Incoming("m1", '"1"', copy)], window=WINDOW), {"m1": [link]}, {1: appt}, MIR, POLICY)
    assert echo == []
    moved = copy.with_changes(start=copy.start + timedelta(hours=1), end=copy.end + timedelta(hours=1))
    actions = plan(Changes([Incoming("m1", '"2"', moved)], window=WINDOW), {"m1": [link]}, {1: appt}, MIR, POLICY)
    assert len(actions) == 1 and isinstance(actions[0], RaiseConflict) and actions[0].kind == "mirror_edited"
    # our own write whose bookkeeping was lost (stale link hash) is recognised, not a conflict
    stale = LinkView(30, 1, 2, "m1", '"0"', "old")
    assert plan(Changes([Incoming("m1", '"3"', copy)], window=WINDOW), {"m1": [stale]}, {1: appt}, MIR, POLICY) == [
        RefreshLink(30, '"3"', copy.content_hash())]


def test_our_write_read_back_in_the_events_zone_is_an_echo() -> None:
    """The database hands times back in UTC, a calendar in the event's zone: same content."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Australia/Adelaide")
    appt = canonical_from_event(1, ev("a", tzid="Australia/Adelaide"), practitioner_id=7, source_calendar_id=1)
    written = project(appt, MIR, POLICY, mirror_uid(1, 2))
    read_back = written.with_changes(start=written.start.astimezone(zone), end=written.end.astimezone(zone))
    assert read_back.content_hash() == written.content_hash()
    link = _mirror_link(appt, written)
    assert plan(Changes([Incoming("m1", '"2"', read_back)], window=WINDOW), {"m1": [link]}, {1: appt}, MIR,
                POLICY) == [RefreshLink(30, '"2"', written.content_hash())]
    assert written.with_changes(tzid="Europe/Berlin").content_hash() != written.content_hash()


def test_mirror_copy_deleted_by_hand_is_repaired_per_policy() -> None:
    appt = canonical_from_event(1, ev("a"), practitioner_id=7, source_calendar_id=1)
    link = _mirror_link(appt, project(appt, MIR, POLICY, mirror_uid(1, 2)))
    for mode in ("recreate", "leave"):
        actions = plan(Changes(deleted_ids=["m1"], window=WINDOW), {"m1": [link]}, {1: appt}, MIR,
                       Policy(deleted_mirror=mode))  # type: ignore[arg-type]
        assert actions == [RepairMirror(1, 2, 30, mode)]  # type: ignore[arg-type]
    cancelled = canonical_from_event(1, ev("a", status="cancelled"), practitioner_id=7)
    assert plan(Changes(deleted_ids=["m1"], window=WINDOW), {"m1": [link]}, {1: cancelled}, MIR, POLICY) == [
        DropLink(30)]


def test_busy_calendars_and_disabled_calendars_plan_nothing() -> None:
    changes = Changes([Incoming("a", None, ev("a"))], window=WINDOW)
    assert plan(changes, {}, {}, CalendarView(3, "busy"), POLICY) == []
    assert plan(changes, {}, {}, CalendarView(1, "source", sync_enabled=False), POLICY) == []


# ---- properties ---------------------------------------------------------------------------------

events = st.builds(
    lambda uid, h, m, svc, st_: EventData(uid=uid, summary=svc, service=svc, start=T0 + timedelta(hours=h),
                                          end=T0 + timedelta(hours=h, minutes=m), status=st_),
    st.sampled_from([f"u{i}" for i in range(6)]), st.integers(-100, 1000), st.sampled_from([15, 30, 60]),
    st.sampled_from(["Physio", "Massage"]), st.sampled_from(["confirmed", "confirmed", "cancelled"]),
)


@settings(max_examples=200, deadline=None)
@given(before=st.lists(events, unique_by=lambda e: e.uid), after=st.lists(events, unique_by=lambda e: e.uid),
       full=st.booleans())
def test_replanning_after_applying_is_quiet(before: list[EventData], after: list[EventData], full: bool) -> None:
    """Apply plan(after) to a model of the state; a second plan of the same changes is a no-op, and
    every live source item maps to exactly one appointment with its times."""
    links: dict[str, list[LinkView]] = {}
    appts: dict[int, Canonical] = {}
    for i, e in enumerate(before, start=1):
        if e.status != "cancelled":
            lk, a = known(e.uid, i, e)
            links[e.uid], appts[i] = [lk], a
    deleted = [uid for uid in links if uid not in {e.uid for e in after}]
    changes = Changes([Incoming(e.uid, '"x"', e) for e in after], deleted_ids=[] if full else deleted, full=full,
                      window=WINDOW)
    actions = plan(changes, links, appts, SRC, POLICY, mirrors=[MIR])
    next_id = len(before) + 1
    for a in actions:  # a model of apply
        if isinstance(a, ImportNew):
            lk, ap = known(a.remote_id, next_id, a.event)
            links[a.remote_id], appts[next_id] = [LinkView(lk.id, next_id, 1, a.remote_id, a.etag, a.content_hash)], ap
            next_id += 1
        elif isinstance(a, UpdateFromSource):
            old = links[a.remote_id][0]
            links[a.remote_id] = [LinkView(old.id, old.appointment_id, 1, a.remote_id, a.etag, a.content_hash)]
            appts[a.appointment_id] = canonical_from_event(a.appointment_id, a.event, practitioner_id=7,
                                                           source_calendar_id=1)
        elif isinstance(a, CancelOrDelete):
            old_a = appts[a.appointment_id]
            appts[a.appointment_id] = canonical_from_event(
                old_a.id, ev(old_a.source_uid or "", status="cancelled").with_changes(start=old_a.start, end=old_a.end),
                practitioner_id=7, source_calendar_id=1)
            if a.content_hash:
                old = links[a.remote_id][0]
                links[a.remote_id] = [LinkView(old.id, old.appointment_id, 1, a.remote_id, a.etag, a.content_hash)]
        elif isinstance(a, RefreshLink):
            for uid, (old,) in list(links.items()):
                if old.id == a.link_id:
                    links[uid] = [LinkView(old.id, old.appointment_id, 1, uid, a.etag, a.content_hash)]
    again = plan(Changes([Incoming(e.uid, '"x"', e) for e in after], full=full, window=WINDOW), links, appts, SRC,
                 POLICY, mirrors=[MIR])
    assert [a for a in again if not isinstance(a, RaiseConflict)] == []
    for e in after:
        owners = [a for a in appts.values() if a.source_uid == e.uid]
        if e.status == "cancelled":
            assert all(a.status == "cancelled" for a in owners)
        else:
            assert len(owners) == 1 and (owners[0].start, owners[0].end) == (e.start, e.end)
            assert owners[0].status == "confirmed"
    for uid in deleted:
        assert all(a.status == "cancelled" for a in appts.values() if a.source_uid == uid)


@settings(max_examples=100, deadline=None)
@given(items=st.lists(events, unique_by=lambda e: e.uid))
def test_plan_is_pure_and_deterministic(items: list[EventData]) -> None:
    changes = Changes([Incoming(e.uid, None, e) for e in items], window=WINDOW)
    assert plan(changes, {}, {}, SRC, POLICY, mirrors=[MIR]) == plan(changes, {}, {}, SRC, POLICY, mirrors=[MIR])


def test_source_edit_waits_while_a_chat_change_is_on_its_way_to_the_source() -> None:
    """Staff cancelled in chat; the source write is throttled. An older source edit read meanwhile
    must not undo the cancel: it is read again once the write has landed."""
    from dataclasses import replace

    from sync.engine.plan import SOURCE_PENDING

    link, appt = known("a", 1, ev("a"))
    appt = replace(appt, status="cancelled")
    edited = Changes([Incoming("a", '"2"', ev("a", 1).with_changes(summary="Renamed"))], window=WINDOW)
    assert plan(edited, {"a": [replace(link, state=SOURCE_PENDING)]}, {1: appt}, SRC, POLICY, mirrors=[MIR]) == []
    # Once the mark is cleared the same edit is planned as usual.
    assert plan(edited, {"a": [link]}, {1: appt}, SRC, POLICY, mirrors=[MIR]) != []
