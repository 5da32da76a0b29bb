"""The engine: import, update, cancel, cursors, window, echoes and conflicts, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from sync.contract import CursorExpired, Unavailable
from sync.engine.run import sync_calendar, sync_connection
from sync.runtime.core import Core
from sync.store import audit
from sync.store.model import AuditEntry, Calendar, Connection
from tests.sync.helpers import NOW, appointments, booking, links, make_clinic, ops


async def test_initial_import_creates_appointments_links_and_mirror_ops(core: Core) -> None:
    clinic = await make_clinic(core)
    src = clinic.servers["source"]
    for i in range(5):
        src.put(booking(f"b{i}", NOW + timedelta(days=i, hours=2)))
    report = await sync_connection(core, clinic.connections["source"])
    assert (report.created, report.updated, report.deleted, report.failed) == (5, 0, 0, 0)
    appts = await appointments(core)
    assert [a.source_uid for a in appts] == [f"b{i}" for i in range(5)]
    assert all(a.version == 1 and a.client_name == "Jane Roe" and a.tzid == "Europe/London" for a in appts)
    lks = await links(core)
    assert len([lk for lk in lks if lk.calendar_id == clinic.calendars["source"]]) == 5
    assert len([lk for lk in lks if lk.calendar_id == clinic.calendars["mirror0"] and lk.remote_id is None]) == 5
    assert sorted(o.idempotency_key for o in await ops(core)) == sorted(
        f"{a.id}:{clinic.calendars['mirror0']}:1:create" for a in appts)
    async with core.store.session() as s:
        cal = await s.get(Calendar, clinic.calendars["source"])
        assert cal is not None and cal.cursor == src.cursor()
        actions = list((await s.scalars(select(AuditEntry.action))).all())
        assert actions.count("appointment.created") == 5
        assert (await audit.verify(s))[1] is None


async def test_no_change_resync_does_nothing(core: Core) -> None:
    clinic = await make_clinic(core)
    clinic.servers["source"].put(booking("b1", NOW + timedelta(hours=3)))
    await sync_connection(core, clinic.connections["source"])
    before = await ops(core)
    report = await sync_connection(core, clinic.connections["source"])
    assert (report.created, report.updated, report.deleted) == (0, 0, 0)
    assert len(await ops(core)) == len(before)
    assert clinic.servers["source"].calls[-1] == "changes"


async def test_reschedule_and_cancel_at_source_update_canonical(core: Core) -> None:
    clinic = await make_clinic(core)
    src = clinic.servers["source"]
    src.put(booking("b1", NOW + timedelta(hours=3)))
    src.put(booking("b2", NOW + timedelta(hours=5)))
    await sync_connection(core, clinic.connections["source"])
    src.put(booking("b1", NOW + timedelta(hours=4)))
    src.remove("b2")
    report = await sync_connection(core, clinic.connections["source"])
    assert (report.updated, report.deleted) == (1, 1)
    a1, a2 = await appointments(core)
    assert a1.start == NOW + timedelta(hours=4) and a1.version == 2
    assert a2.status == "cancelled" and a2.version == 2
    keys = {o.idempotency_key for o in await ops(core)}
    mirror = clinic.calendars["mirror0"]
    assert f"{a1.id}:{mirror}:2:create" in keys  # copy not made yet: still a create, at the new version
    async with core.store.session() as s:
        actions = list((await s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))).all())
    assert "appointment.rescheduled" in actions and "appointment.cancelled" in actions


async def test_status_cancelled_item_cancels(core: Core) -> None:
    clinic = await make_clinic(core)
    src = clinic.servers["source"]
    src.put(booking("b1", NOW + timedelta(hours=3)))
    await sync_connection(core, clinic.connections["source"])
    src.put(booking("b1", NOW + timedelta(hours=3), status="cancelled"))
    report = await sync_connection(core, clinic.connections["source"])
    assert report.deleted == 1
    assert (await appointments(core))[0].status == "cancelled"


async def test_expired_cursor_runs_exactly_one_full_resync(core: Core) -> None:
    clinic = await make_clinic(core)
    src = clinic.servers["source"]
    src.put(booking("b1", NOW + timedelta(hours=3)))
    src.put(booking("b2", NOW + timedelta(hours=4)))
    await sync_connection(core, clinic.connections["source"])
    src.remove("b2")
    src.put(booking("b3", NOW + timedelta(hours=6)))
    src.expire_cursors()
    src.calls.clear()
    report = await sync_connection(core, clinic.connections["source"])
    assert src.calls == ["changes", "changes"]
    assert (report.full_resyncs, report.created, report.deleted) == (1, 1, 1)
    assert {a.source_uid: a.status for a in await appointments(core)} == {
        "b1": "confirmed", "b2": "cancelled", "b3": "confirmed"}
    async with core.store.session() as s:
        assert "sync.full_resync" in (await s.scalars(select(AuditEntry.action))).all()


async def test_expired_cursor_twice_is_a_failure_not_a_loop(core: Core) -> None:
    clinic = await make_clinic(core)
    src = clinic.servers["source"]
    await sync_connection(core, clinic.connections["source"])
    src.fail_next("changes", CursorExpired("gone"), CursorExpired("gone again"))
    report = await sync_connection(core, clinic.connections["source"])
    assert report.failed == 1
    async with core.store.session() as s:
        conn = await s.get(Connection, clinic.connections["source"])
        assert conn is not None and "CursorExpired" in (conn.last_error or "")


async def test_provider_failure_keeps_cursor_and_state(core: Core) -> None:
    clinic = await make_clinic(core)
    src = clinic.servers["source"]
    src.put(booking("b1", NOW + timedelta(hours=3)))
    await sync_connection(core, clinic.connections["source"])
    src.put(booking("b2", NOW + timedelta(hours=3)))
    src.fail_next("changes", Unavailable("503"))
    assert (await sync_connection(core, clinic.connections["source"])).failed == 1
    assert len(await appointments(core)) == 1
    assert (await sync_connection(core, clinic.connections["source"])).created == 1


async def test_window_limits_initial_sync(core: Core) -> None:
    clinic = await make_clinic(core)
    async with core.store.session() as s:
        conn = await s.get(Connection, clinic.connections["source"])
        assert conn is not None
        conn.window_days_back, conn.window_days_ahead = 1, 10
    src = clinic.servers["source"]
    src.put(booking("past", NOW - timedelta(days=3)))
    src.put(booking("soon", NOW + timedelta(days=5)))
    src.put(booking("late", NOW + timedelta(days=11)))
    await sync_calendar(core, clinic.calendars["source"])
    assert [a.source_uid for a in await appointments(core)] == ["soon"]


async def test_full_resync_leaves_appointments_outside_the_window_alone(core: Core) -> None:
    clinic = await make_clinic(core)
    src = clinic.servers["source"]
    src.put(booking("far", NOW + timedelta(days=100)))
    await sync_connection(core, clinic.connections["source"])
    async with core.store.session() as s:
        conn = await s.get(Connection, clinic.connections["source"])
        assert conn is not None
        conn.window_days_ahead = 30
    src.expire_cursors()
    await sync_connection(core, clinic.connections["source"])
    assert (await appointments(core))[0].status == "confirmed"


async def test_double_booking_across_sources_is_a_conflict(core: Core) -> None:
    clinic = await make_clinic(core)
    await clinic.add_calendar("source2", "source")
    clinic.servers["source"].put(booking("b1", NOW + timedelta(hours=3)))
    clinic.servers["source2"].put(booking("x1", NOW + timedelta(hours=3, minutes=15)))
    await sync_connection(core, clinic.connections["source"])
    report = await sync_connection(core, clinic.connections["source2"])
    assert report.conflicts == 1 and report.created == 1
    async with core.store.session() as s:
        entry = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "sync.conflict.double_booking"))).one()
    a1, a2 = await appointments(core)
    assert entry.appointment_id == a2.id and entry.details is not None
    assert entry.details["other_appointment_id"] == a1.id


async def _paged_source(core: Core, count: int) -> tuple[Any, Any]:
    """A clinic whose source lists 2 items a page and holds `count` bookings, b0.., one a day."""
    clinic = await make_clinic(core)
    src = clinic.servers["source"]
    src.page_size = 2
    for i in range(count):
        src.put(booking(f"b{i}", NOW + timedelta(days=i, hours=2)))
    return clinic, src


async def test_paged_initial_sync_and_full_resync_match_one_page(core: Core) -> None:
    """Pages are planned and applied one by one; a full listing still cancels what it lacks."""
    clinic, src = await _paged_source(core, 7)
    report = await sync_connection(core, clinic.connections["source"])
    assert (report.created, report.deleted, report.failed) == (7, 0, 0)
    assert [a.source_uid for a in await appointments(core)] == [f"b{i}" for i in range(7)]
    src.remove("b1")
    src.remove("b5")
    src.put(booking("b3", NOW + timedelta(days=3, hours=4)))
    src.expire_cursors()
    report = await sync_connection(core, clinic.connections["source"])
    assert (report.full_resyncs, report.created, report.updated, report.deleted) == (1, 0, 1, 2)
    assert {a.source_uid: a.status for a in await appointments(core)} == {
        f"b{i}": "cancelled" if i in (1, 5) else "confirmed" for i in range(7)}
    async with core.store.session() as s:
        assert (await audit.verify(s))[1] is None


async def test_failure_after_some_pages_commits_nothing(core: Core) -> None:
    clinic, src = await _paged_source(core, 5)
    src.fail_next("page", Unavailable("connection reset"))
    assert (await sync_connection(core, clinic.connections["source"])).failed == 1
    assert await appointments(core) == [] and await links(core) == []
    async with core.store.session() as s:
        cal = await s.get(Calendar, clinic.calendars["source"])
        assert cal is not None and cal.cursor is None
    assert (await sync_connection(core, clinic.connections["source"])).created == 5


async def test_paged_sync_finds_double_bookings_on_every_page(core: Core) -> None:
    """Other sources' appointments are read once per run and still checked against each page."""
    clinic = await make_clinic(core)
    await clinic.add_calendar("source2", "source")
    for i in range(6):
        clinic.servers["source"].put(booking(f"b{i}", NOW + timedelta(days=i, hours=3)))
    await sync_connection(core, clinic.connections["source"])
    src2 = clinic.servers["source2"]
    src2.page_size = 2
    for i in (1, 0, 5, 3):  # the second page reaches beyond the span the first one read
        src2.put(booking(f"x{i}", NOW + timedelta(days=i, hours=3, minutes=15)))
    src2.put(booking("free", NOW + timedelta(days=2, hours=8)))
    report = await sync_connection(core, clinic.connections["source2"])
    assert (report.created, report.conflicts) == (5, 4)
    by_id = {a.id: a.source_uid for a in await appointments(core)}
    async with core.store.session() as s:
        entries = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "sync.conflict.double_booking"))).all()
    assert sorted((by_id[e.appointment_id], by_id[e.details["other_appointment_id"]]) for e in entries
                  if e.appointment_id is not None and e.details) == [("x0", "b0"), ("x1", "b1"), ("x3", "b3"),
                                                                     ("x5", "b5")]


async def test_a_booking_on_a_later_visit_of_another_sources_series_is_a_double_booking(core: Core) -> None:
    """A weekly series is one row; a booking from another source on next week's visit still clashes."""
    clinic = await make_clinic(core)
    await clinic.add_calendar("source2", "source")
    first = NOW - timedelta(weeks=3) + timedelta(hours=3)
    clinic.servers["source"].put(booking("weekly", first, rrule="FREQ=WEEKLY"))
    clinic.servers["source2"].put(booking("x1", first + timedelta(weeks=4, hours=2)))  # clear of the visits
    clinic.servers["source2"].put(booking("x2", first + timedelta(weeks=6, minutes=15)))  # on the 7th visit
    clinic.servers["source2"].put(booking("x3", first + timedelta(weeks=9, hours=2)))  # clear
    await sync_connection(core, clinic.connections["source"])
    report = await sync_connection(core, clinic.connections["source2"])
    assert report.conflicts == 1 and report.created == 3
    async with core.store.session() as s:
        entry = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "sync.conflict.double_booking"))).one()
    series = (await appointments(core))[0]
    assert series.rrule and entry.details is not None and entry.details["other_appointment_id"] == series.id
