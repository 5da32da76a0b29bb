"""The outbox worker: mirror copies, retries honouring Retry-After, crash safety, conflicts, chat changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from sync.contract import RateLimited, Refused, Unavailable
from sync.engine.outbox import OutboxConfig, run_once, run_until_idle
from sync.engine.run import sync_connection
from sync.engine.subscriber import register
from sync.runtime.core import Core
from sync.services import appointments as services
from sync.store import audit
from sync.store.model import Appointment, AuditEntry, Link
from tests.sync.helpers import NOW, Clinic, appointments, booking, links, make_clinic, ops


def fake_sleep(clinic: Clinic, slept: list[float]):  # type: ignore[no-untyped-def]
    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clinic.now += timedelta(seconds=seconds)
    return sleep


async def settle(clinic: Clinic, slept: list[float] | None = None, config: OutboxConfig | None = None) -> None:
    await run_until_idle(clinic.core, sleep=fake_sleep(clinic, slept if slept is not None else []), config=config)


async def imported(core: Core, n: int = 1, **settings: object) -> Clinic:
    clinic = await make_clinic(core, dict(settings))
    for i in range(n):
        clinic.servers["source"].put(booking(f"b{i}", NOW + timedelta(days=1, hours=i)))
    await sync_connection(core, clinic.connections["source"])
    return clinic


async def test_mirror_gets_one_projected_copy(core: Core) -> None:
    clinic = await imported(core, 2)
    await settle(clinic)
    mirror = clinic.servers["mirror0"]
    assert len(mirror.items) == 2
    appts = await appointments(core)
    copy = mirror.items[f"cb{appts[0].id}c{clinic.calendars['mirror0']}"].event
    assert copy.summary == "Physio (J.R.)" and copy.clinicbot_id == f"A-{appts[0].id}"
    assert "Jane" not in copy.summary + copy.description and copy.client_name is None
    assert all(o.status == "done" for o in await ops(core))
    assert all(lk.remote_id and lk.content_hash for lk in await links(core))
    # the mirror's own change feed shows our writes: reading them back is a no-op, not a conflict
    report = await sync_connection(core, clinic.connections["mirror0"])
    assert (report.conflicts, report.created, report.updated) == (0, 0, 0)


async def test_rate_limited_waits_for_retry_after(core: Core) -> None:
    clinic = await imported(core)
    clinic.servers["mirror0"].fail_next("create", RateLimited("429", retry_after=120))
    slept: list[float] = []
    await settle(clinic, slept)
    assert slept and slept[0] >= 120
    assert len(clinic.servers["mirror0"].items) == 1
    assert (await ops(core))[0].attempts == 1  # the throttled try is not counted


async def test_unavailable_backs_off_then_fails_visibly(core: Core) -> None:
    clinic = await imported(core)
    clinic.servers["mirror0"].fail_next("create", *[Unavailable("503")] * 3)
    slept: list[float] = []
    cfg = OutboxConfig(max_attempts=3, base_delay=10)
    await settle(clinic, slept, cfg)
    op = (await ops(core))[0]
    assert slept == [10, 20]
    assert op.status == "failed" and op.attempts == 3 and "Unavailable" in (op.last_error or "")
    assert clinic.servers["mirror0"].items == {}


async def test_unavailable_then_success(core: Core) -> None:
    clinic = await imported(core)
    clinic.servers["mirror0"].fail_next("create", Unavailable("503"), TimeoutError())
    await settle(clinic)
    assert len(clinic.servers["mirror0"].items) == 1 and (await ops(core))[0].status == "done"


async def test_crash_after_remote_write_does_not_duplicate(core: Core) -> None:
    clinic = await imported(core)

    def crash(label: str) -> None:
        if label == "outbox.remote_done":
            raise RuntimeError("crash")
    core.services.fault_injector = crash
    with pytest.raises(RuntimeError):
        await run_once(core)
    core.services.fault_injector = None
    assert (await links(core))[1].remote_id is None  # the write landed, its bookkeeping did not
    await settle(clinic)
    assert len(clinic.servers["mirror0"].items) == 1
    assert "create" in clinic.servers["mirror0"].calls and "get" in clinic.servers["mirror0"].calls
    assert (await links(core))[1].remote_id is not None


def _crash_at(label: str):  # type: ignore[no-untyped-def]
    def crash(at: str) -> None:
        if at == label:
            raise RuntimeError("crash")
    return crash


@pytest.mark.parametrize("mode", ["cancel", "delete"])
async def test_cancelled_after_an_unrecorded_create_leaves_no_live_copy(core: Core, mode: str) -> None:
    """The create lands, the process dies before recording it, the visit is cancelled: the copy is
    not "never copied". Its key finds it, and it is marked cancelled (or deleted) per cancel_mode,
    not left on the calendar as a live visit (found by the booking convergence machine)."""
    clinic = await imported(core, cancel_mode=mode)
    core.services.fault_injector = _crash_at("outbox.remote_done")
    with pytest.raises(RuntimeError):
        await run_once(core)
    core.services.fault_injector = None
    mirror = clinic.servers["mirror0"]
    assert len(mirror.items) == 1 and (await links(core))[1].remote_id is None
    clinic.servers["source"].remove("b0")
    await sync_connection(core, clinic.connections["source"])
    await settle(clinic)
    assert (await appointments(core))[0].status == "cancelled"
    if mode == "delete":
        assert mirror.items == {}
        assert [lk.calendar_id for lk in await links(core)] == [clinic.calendars["source"]]
    else:
        (item,) = mirror.items.values()
        assert item.event.status == "cancelled" and item.event.summary.startswith("Cancelled")
        assert (await links(core))[1].remote_id == item.remote_id
    assert all(o.status == "done" for o in await ops(core))


async def test_cancelled_before_its_first_create_writes_nothing(core: Core) -> None:
    """Booked and cancelled before the outbox ran: both creates are claimed in one batch, neither was
    tried before, so nothing is written to the mirror (no probe)."""
    clinic = await imported(core)
    clinic.servers["source"].remove("b0")
    await sync_connection(core, clinic.connections["source"])
    assert len([o for o in await ops(core) if o.op == "create"]) == 2
    await settle(clinic)
    assert clinic.servers["mirror0"].items == {} and clinic.servers["mirror0"].calls == []


async def test_cancelled_after_a_refused_create_probes_once(core: Core) -> None:
    """A create refused with a 503, then the visit cancelled: the retry cannot tell a refused attempt
    from one that landed unrecorded, so it looks with the create key; the copy shows as cancelled."""
    clinic = await imported(core)
    mirror = clinic.servers["mirror0"]
    mirror.fail_next("create", Unavailable("503"))
    assert (await run_once(core)).retried == 1
    clinic.servers["source"].remove("b0")
    await sync_connection(core, clinic.connections["source"])
    await settle(clinic)
    (item,) = mirror.items.values()
    assert item.event.status == "cancelled"
    assert all(o.status == "done" for o in await ops(core))

async def test_hand_edited_mirror_copy_is_a_conflict_not_overwritten(core: Core) -> None:
    clinic = await imported(core)
    await settle(clinic)
    mirror = clinic.servers["mirror0"]
    (rid, item), = mirror.items.items()
    moved = item.event.with_changes(start=item.event.start + timedelta(hours=1), end=item.event.end + timedelta(hours=1))
    mirror.put(moved, rid)
    report = await sync_connection(core, clinic.connections["mirror0"])
    assert report.conflicts == 1
    # the source moves the booking: the hand-edited copy is still not overwritten
    clinic.servers["source"].put(booking("b0", NOW + timedelta(days=1, hours=3)))
    await sync_connection(core, clinic.connections["source"])
    await settle(clinic)
    assert mirror.items[rid].event.start == moved.start
    assert [lk.state for lk in await links(core) if lk.calendar_id == clinic.calendars["mirror0"]] == ["conflict"]
    async with core.store.session() as s:
        assert "sync.conflict.mirror_edited" in (await s.scalars(select(AuditEntry.action))).all()


async def test_stale_etag_on_hand_edit_races_become_a_conflict(core: Core) -> None:
    clinic = await imported(core)
    await settle(clinic)
    mirror = clinic.servers["mirror0"]
    (rid, item), = mirror.items.items()
    mirror.put(item.event.with_changes(summary="changed by hand"), rid)  # not yet seen by a sync
    clinic.servers["source"].put(booking("b0", NOW + timedelta(days=1, hours=3)))
    await sync_connection(core, clinic.connections["source"])
    await settle(clinic)
    assert mirror.items[rid].event.summary == "changed by hand"
    assert [o.status for o in await ops(core)][-1] == "dead"


@pytest.mark.parametrize("policy", ["recreate", "leave"])
async def test_mirror_copy_deleted_by_hand(core: Core, policy: str) -> None:
    clinic = await imported(core, deleted_mirror=policy)
    await settle(clinic)
    mirror = clinic.servers["mirror0"]
    mirror.remove(next(iter(mirror.items)))
    await sync_connection(core, clinic.connections["mirror0"])
    await settle(clinic)
    assert len(mirror.items) == (1 if policy == "recreate" else 0)
    async with core.store.session() as s:
        assert "sync.mirror_deleted" in (await s.scalars(select(AuditEntry.action))).all()


async def test_a_recreated_copy_deleted_by_hand_again_is_recreated_again(core: Core) -> None:
    """Found by the convergence machine (seed 75306324653574946399167925493849567827): a copy deleted by
    hand is recreated at the same resource name (CalDAV names a copy after its UID), so a second deletion
    of the same visit at the same version made the same outbox key, which the outbox took for a repeat
    and skipped: the copy stayed gone, whatever the practice's policy said."""
    clinic = await imported(core, deleted_mirror="recreate")
    await settle(clinic)
    mirror = clinic.servers["mirror0"]
    for _ in range(3):
        (rid,) = mirror.items
        mirror.remove(rid)
        await sync_connection(core, clinic.connections["mirror0"])
        await settle(clinic)
        assert len(mirror.items) == 1
    async with core.store.session() as s:
        actions = (await s.scalars(select(AuditEntry.action))).all()
    assert actions.count("sync.mirror_deleted") == 3


@pytest.mark.parametrize("mode", ["cancel", "delete"])
async def test_source_cancellation_reaches_mirror_per_cancel_mode(core: Core, mode: str) -> None:
    clinic = await imported(core, cancel_mode=mode)
    await settle(clinic)
    clinic.servers["source"].remove("b0")
    await sync_connection(core, clinic.connections["source"])
    await settle(clinic)
    mirror = clinic.servers["mirror0"]
    if mode == "delete":
        assert mirror.items == {}
    else:
        (item,) = mirror.items.values()
        assert item.event.status == "cancelled" and item.event.summary.startswith("Cancelled")


async def test_chat_reschedule_writes_source_and_mirror(core: Core) -> None:
    register(core)
    clinic = await imported(core)
    await settle(clinic)
    new_start = NOW + timedelta(days=2, hours=1)
    async with core.store.session() as s:
        appt = (await s.scalars(select(Appointment))).one()
        await services.reschedule(s, core.bus, appt, new_start, None, "slack:T1/U1")
    await settle(clinic)
    assert clinic.servers["source"].items["b0"].event.start == new_start
    assert next(iter(clinic.servers["mirror0"].items.values())).event.start == new_start
    # the source's change feed now shows our own write: an echo, not a change
    report = await sync_connection(core, clinic.connections["source"])
    assert (report.updated, report.conflicts) == (0, 0)
    assert (await appointments(core))[0].version == 2


async def test_a_core_without_a_worker_queues_the_remote_writes(core: Core) -> None:
    """The CLI or an embedder opens a Core and no SyncWorker: a reschedule must still queue the
    writes to the source and the mirror, to be sent by whichever worker runs next."""
    clinic = await imported(core)
    await settle(clinic)
    async with core.store.session() as s:
        appt = (await s.scalars(select(Appointment))).one()
        await services.reschedule(s, core.bus, appt, NOW + timedelta(days=2, hours=1), None, "cli:admin")
    pending = [(o.op, o.calendar_id) for o in await ops(core) if o.status == "pending"]
    assert ("source_reschedule", clinic.calendars["source"]) in pending
    assert any(cal == clinic.calendars["mirror0"] for _, cal in pending)


async def test_chat_cancel_writes_source(core: Core) -> None:
    register(core)
    clinic = await imported(core, cancel_mode="delete")
    await settle(clinic)
    async with core.store.session() as s:
        appt = (await s.scalars(select(Appointment))).one()
        await services.cancel(s, core.bus, appt, "patient sick", "teams:t/u")
    await settle(clinic)
    assert clinic.servers["source"].items["b0"].event.status == "cancelled"
    assert clinic.servers["mirror0"].items == {}
    async with core.store.session() as s:
        assert (await audit.verify(s))[1] is None


async def test_failing_connection_does_not_block_others(core: Core) -> None:
    clinic = await make_clinic(core, mirrors=2)
    clinic.servers["source"].put(booking("b0", NOW + timedelta(days=1)))
    await sync_connection(core, clinic.connections["source"])
    clinic.servers["mirror0"].fail_next("create", Refused("nope"))
    await settle(clinic)
    assert len(clinic.servers["mirror1"].items) == 1
    statuses = {o.calendar_id: o.status for o in await ops(core)}
    assert statuses == {clinic.calendars["mirror0"]: "failed", clinic.calendars["mirror1"]: "done"}


async def test_practice_wide_busy_projection(core: Core) -> None:
    clinic = await make_clinic(core, {"busy_word": "Occupied"}, projection="busy")
    clinic.servers["source"].put(booking("b0", NOW + timedelta(days=1), description="knee pain"))
    await sync_connection(core, clinic.connections["source"])
    await settle(clinic)
    (item,) = clinic.servers["mirror0"].items.values()
    assert item.event.summary == "Occupied" and item.event.description == "" and item.event.service is None
    async with core.store.session() as s:
        assert (await s.scalars(select(Link.state))).all() == ["ok", "ok"]
