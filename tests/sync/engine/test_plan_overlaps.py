"""Double bookings inside one source (issue 22, item 4), as the planner decides them: each pair once,
compared as the bookings are after the page."""

from __future__ import annotations

from datetime import timedelta

from sync.engine.plan import Changes, Incoming, RaiseConflict, canonical_from_event, plan
from tests.sync.engine.test_plan import POLICY, SRC, WINDOW, ev, known


def _conflicts(actions: list[object]) -> list[RaiseConflict]:
    return [a for a in actions if isinstance(a, RaiseConflict)]


def test_two_new_bookings_of_one_page_in_one_slot_are_one_double_booking() -> None:
    items = [Incoming("a", None, ev("a", 0)), Incoming("b", None, ev("b", 0)), Incoming("c", None, ev("c", 2))]
    (conflict,) = _conflicts(plan(Changes(items, window=WINDOW), {}, {}, SRC, POLICY))
    assert conflict == RaiseConflict("double_booking", None, 1, source_key=("a", ""), other_source_key=("b", ""))


def test_a_new_booking_on_a_stored_booking_of_the_same_source() -> None:
    link, stored = known("a", 5, ev("a", 0))
    actions = plan(Changes([Incoming("b", None, ev("b", 0))], window=WINDOW), {"a": [link]}, {5: stored}, SRC,
                   POLICY)
    assert _conflicts(actions) == [RaiseConflict("double_booking", None, 1, source_key=("b", ""),
                                                 other_appointment_id=5)]


def test_a_swap_in_one_page_is_no_double_booking() -> None:
    link_a, a = known("a", 5, ev("a", 0))
    link_b, b = known("b", 6, ev("b", 1))
    swapped = [Incoming("a", '"2"', ev("a", 1)), Incoming("b", '"2"', ev("b", 0))]
    actions = plan(Changes(swapped, window=WINDOW), {"a": [link_a], "b": [link_b]}, {5: a, 6: b}, SRC, POLICY)
    assert _conflicts(actions) == []


def test_a_move_onto_a_booking_and_a_rename_of_it_raise_once() -> None:
    link_a, a = known("a", 5, ev("a", 0))
    link_b, b = known("b", 6, ev("b", 1))
    items = [Incoming("a", '"2"', ev("a", 1)), Incoming("b", '"2"', ev("b", 1, description="renamed"))]
    actions = plan(Changes(items, window=WINDOW), {"a": [link_a], "b": [link_b]}, {5: a, 6: b}, SRC, POLICY)
    assert _conflicts(actions) == [RaiseConflict("double_booking", 5, 1, other_appointment_id=6)]


def test_all_day_and_cancelled_bookings_are_no_double_booking() -> None:
    day = ev("d", 0).with_changes(all_day=True, start=ev("d", 0).start, end=ev("d", 0).start + timedelta(days=1))
    items = [Incoming("a", None, ev("a", 0)), Incoming("d", None, day)]
    assert _conflicts(plan(Changes(items, window=WINDOW), {}, {}, SRC, POLICY)) == []
    other = canonical_from_event(9, ev("x", 0), practitioner_id=7, source_calendar_id=1)
    gone = canonical_from_event(9, ev("x", 0, status="cancelled"), practitioner_id=7, source_calendar_id=1)
    assert _conflicts(plan(Changes([Incoming("b", None, ev("b", 0))], window=WINDOW), {}, {9: gone}, SRC,
                           POLICY)) == []
    assert other.active and not gone.active
