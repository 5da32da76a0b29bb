"""A Graph subscription the platform removed is an alarm until a new one is made, then a recovery."""

from __future__ import annotations

from sync.integrations.push import ensure_push, renew_push
from sync.notify.alarms import AlarmWorker
from sync.runtime.notifier import RecordingNotifier
from tests.sync.integrations.test_push import Clinic, _graph_connection, clinic  # noqa: F401 - the fixture


async def test_a_removed_subscription_is_told_once_and_its_return(clinic: Clinic) -> None:  # noqa: F811
    conn_id = await _graph_connection(clinic)
    await ensure_push(clinic.core, conn_id)
    [row] = await clinic.rows(conn_id)
    notifier = RecordingNotifier()
    worker = AlarmWorker(clinic.core, lambda: notifier, interval=60)
    assert await worker.run_once() == 0

    assert await clinic.graph.subs.lifecycle(row.remote_id, "subscriptionRemoved") == 202
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    [removed] = notifier.sent
    assert removed.audience == "ops" and removed.data["title"] == "Change notifications removed"
    assert "me/calendar" in removed.data["text"] and "polls meanwhile" in removed.data["text"]

    await renew_push(clinic.core)
    [fresh] = await clinic.rows(conn_id)
    assert fresh.status == "active"
    assert await worker.run_once() == 1
    assert notifier.sent[1].data["title"] == "Resolved" and "work again" in notifier.sent[1].data["text"]
