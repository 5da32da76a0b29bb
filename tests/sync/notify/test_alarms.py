"""Alarms from the state the sync keeps: a write that failed for good, a connection failing for long,
one incident told once (across rounds and across two replicas), and a recovery told once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from sync.boot import open_core
from sync.contract import BadPayload, Unavailable
from sync.engine.outbox import run_until_idle
from sync.engine.run import sync_connection
from sync.notify.alarms import AlarmWorker
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification, RecordingNotifier
from sync.runtime.settings import Settings
from sync.services.connections import set_sync
from sync.store.model import Alarm, AuditEntry
from tests.sync.helpers import NOW, booking, make_clinic


def _worker(core: Core, notifier: RecordingNotifier) -> AlarmWorker:
    return AlarmWorker(core, lambda: notifier, interval=60)


def _texts(notifier: RecordingNotifier) -> list[str]:
    return [f"{n.kind}|{n.audience}|{n.data.get('title', '')}|{n.data.get('text', '')}" for n in notifier.sent]


async def test_a_write_that_failed_for_good_is_told_once_without_patient_data(core: Core) -> None:
    clinic = await make_clinic(core)
    clinic.servers["source"].put(booking("b1", NOW + timedelta(days=1)))
    clinic.servers["mirror0"].fail_next("create", BadPayload("mirror refused the event"))
    await sync_connection(core, clinic.connections["source"])
    await run_until_idle(core)
    notifier = RecordingNotifier()
    worker = _worker(core, notifier)
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0  # the next round: still open, not told again
    [told] = _texts(notifier)
    assert told.startswith("notice|ops|Calendar writes failed|1 change(s) could not be written to memory mirror0")
    assert "A-1" in told and "Jane" not in told and "Roe" not in told
    async with core.store.session() as s:
        [alarm] = (await s.scalars(select(Alarm))).all()
        assert alarm.kind == "outbox_failed" and alarm.open_key == f"outbox_failed:connection:{clinic.connections['mirror0']}"


async def test_a_connection_failing_for_long_is_told_after_the_threshold_and_its_recovery_once(core: Core) -> None:
    clinic = await make_clinic(core)
    await sync_connection(core, clinic.connections["source"])  # a good sync: the failure starts after it
    notifier = RecordingNotifier()
    worker = _worker(core, notifier)
    source = clinic.servers["source"]
    source.fail_next("changes", Unavailable("server down"), Unavailable("server down"), Unavailable("server down"))
    clinic.now += timedelta(minutes=5)
    await sync_connection(core, clinic.connections["source"])
    assert await worker.run_once() == 0  # failing for 5 minutes: below the threshold (60)
    clinic.now += timedelta(minutes=61)
    await sync_connection(core, clinic.connections["source"])
    assert await worker.run_once() == 1
    [opened] = _texts(notifier)
    assert "A connection keeps failing" in opened and "Unavailable" in opened and "memory source" in opened
    await sync_connection(core, clinic.connections["source"])  # still failing
    assert await worker.run_once() == 0
    await sync_connection(core, clinic.connections["source"])  # the server is back
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert _texts(notifier)[1] == "notice|ops|Resolved|memory source syncs again."
    async with core.store.session() as s:
        actions = (await s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("alarm.%"))
                                   .order_by(AuditEntry.seq))).all()
    assert actions == ["alarm.opened", "alarm.cleared"]


async def test_an_incident_that_clears_before_it_was_told_is_never_told(core: Core) -> None:
    clinic = await make_clinic(core)
    clinic.servers["source"].put(booking("b1", NOW + timedelta(days=1)))
    clinic.servers["mirror0"].fail_next("create", BadPayload("refused"))
    await sync_connection(core, clinic.connections["source"])
    await run_until_idle(core)

    class Down:
        async def notify(self, notification: Notification) -> None:
            raise DeliveryError("slack is down")

    worker = AlarmWorker(core, Down, interval=60)
    await worker.run_once()  # opened, its message failed and waits for a retry
    async with core.store.session() as s:
        for alarm in (await s.scalars(select(Alarm))).all():
            assert alarm.notice_status == "pending" and alarm.attempts == 1
    # Before the retry, an admin turns that calendar's sync off: nobody needs to hear about it now.
    await set_sync(core, clinic.practice_id, enabled=False, name="mirror0", actor="cli:test")
    notifier = RecordingNotifier()
    clinic.now += timedelta(hours=1)
    assert await _worker(core, notifier).run_once() == 0
    assert notifier.sent == []
    async with core.store.session() as s:
        [alarm] = (await s.scalars(select(Alarm))).all()
        assert (alarm.notice_status, alarm.recovery_status, alarm.open_key) == ("skipped", "none", None)


async def test_two_replicas_sweeping_at_once_tell_once(core: Core, settings: Settings) -> None:
    clinic = await make_clinic(core)
    clinic.servers["source"].put(booking("b1", NOW + timedelta(days=1)))
    clinic.servers["mirror0"].fail_next("create", BadPayload("refused"))
    await sync_connection(core, clinic.connections["source"])
    await run_until_idle(core)
    other = open_core(settings)
    other.clock = clinic.clock
    try:
        first, second = RecordingNotifier(), RecordingNotifier()
        sent = await asyncio.gather(_worker(core, first).run_once(), _worker(other, second).run_once())
        assert sorted(sent) == [0, 1] and len(first.sent) + len(second.sent) == 1
        async with core.store.session() as s:
            assert len((await s.scalars(select(Alarm))).all()) == 1
    finally:
        await other.close()
