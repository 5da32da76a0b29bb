"""A work calendar's push channel lives as long as it has tracked events: the first `track` opens it
(a Google watch channel, a Graph subscription, on the fakes), a change the platform announces
updates the tracked activity through the queued sync (no poll runs here), the renewal job renews it
with the others, and untracking the last event closes it. Nylas's app-wide webhook is covered in
tests/e2e/test_nylas_work_calendar.py."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from sync.engine.run import sync_connection
from sync.integrations.push import ensure_push, renew_push
from sync.runtime.syncqueue import SyncQueue
from sync.services.connections import set_calendar
from sync.services.errors import Conflict
from sync.services.tracked_events import event_ref, track, untrack
from sync.store.model import ACTIVITY, Appointment, Calendar, Connection, WebhookSubscription
from tests.sync.integrations.test_push import PRIMARY, Clinic, _graph_connection, clinic

__all__ = ["clinic"]  # the fixture, used by name


def syncing(clinic: Clinic) -> None:
    """The queue runs real syncs (the fixture's only records them)."""

    async def runner(connection_id: int) -> None:
        clinic.synced.append(connection_id)
        await sync_connection(clinic.core, connection_id, wait=30.0)

    clinic.core.services.sync_queue = SyncQueue(runner)


async def practice_of(clinic: Clinic, connection_id: int) -> tuple[int, int]:
    async with clinic.core.store.session() as s:
        conn = await s.get(Connection, connection_id)
        assert conn is not None
        cal_id = await s.scalar(select(Calendar.id).where(Calendar.connection_id == connection_id))
        assert cal_id is not None
        return conn.practice_id, cal_id


async def activity(clinic: Clinic) -> Appointment | None:
    async with clinic.core.store.session() as s:
        return await s.scalar(select(Appointment).where(Appointment.kind == ACTIVITY))


def slot(days: int, hour: int) -> datetime:
    return datetime.combine(datetime.now(UTC).date() + timedelta(days=days), time(hour), UTC)


async def test_google_work_calendar_watched_while_an_event_is_tracked(clinic: Clinic) -> None:
    syncing(clinic)
    conn_id = await clinic.add("google", clinic.google.oauth.grant(), [(PRIMARY, "work")])
    practice_id, cal_id = await practice_of(clinic, conn_id)
    event = clinic.google.server_insert(PRIMARY, {
        "summary": "Referral visit", "start": {"dateTime": slot(2, 10).isoformat()},
        "end": {"dateTime": slot(2, 11).isoformat()}})
    other = clinic.google.server_insert(PRIMARY, {
        "summary": "Stand-up", "start": {"dateTime": slot(2, 9).isoformat()},
        "end": {"dateTime": slot(2, 9).replace(minute=15).isoformat()}})
    # Nothing tracked: the work calendar is read live only, and has no channel.
    assert (await ensure_push(clinic.core, conn_id)).created == 0 and clinic.google.channels == {}

    # Tracking its first event opens the calendar's channel at once.
    done = await track(clinic.core, practice_id, event_ref(cal_id, event["id"]), actor="test")
    [row] = await clinic.rows(conn_id)
    channel = clinic.google.channels[row.remote_id]
    assert row.calendar_id == cal_id and not channel.stopped
    assert channel.address == f"{clinic.core.settings.public_url}/webhooks/google/{conn_id}"
    assert clinic.synced == []

    # A change in Google is announced, and the queued sync moves the activity: no poll needed.
    clinic.google.server_patch(PRIMARY, event["id"], {"start": {"dateTime": slot(2, 14).isoformat()},
                                                      "end": {"dateTime": slot(2, 15).isoformat()}})
    await clinic.google.drain()
    await clinic.queue.drain()
    assert clinic.synced == [conn_id]
    moved = await activity(clinic)
    assert moved is not None and moved.id == done.appointment_id and moved.start == slot(2, 14)

    # A second tracked event uses the same channel; untracking one of two keeps it.
    second = await track(clinic.core, practice_id, event_ref(cal_id, other["id"]), actor="test")
    assert [r.remote_id for r in await clinic.rows(conn_id)] == [row.remote_id]
    await untrack(clinic.core, practice_id, second.ref, actor="test")
    assert [r.remote_id for r in await clinic.rows(conn_id)] == [row.remote_id] and not channel.stopped
    # Changing the calendar's projection leaves the channel of a calendar that still tracks.
    await set_calendar(clinic.core, cal_id, role="work", actor="test")
    assert [r.remote_id for r in await clinic.rows(conn_id)] == [row.remote_id] and not channel.stopped

    # Renewed with the others when it nears its expiry (Google: a new channel, the old one stopped).
    async with clinic.core.store.session() as s:
        stored = await s.get(WebhookSubscription, row.id)
        assert stored is not None
        stored.expires_at = clinic.core.clock() + timedelta(hours=1)
    await renew_push(clinic.core)
    [fresh] = await clinic.rows(conn_id)
    assert fresh.remote_id != row.remote_id and channel.stopped and not clinic.google.channels[fresh.remote_id].stopped

    # Untracking the last event closes it.
    await untrack(clinic.core, practice_id, done.ref, actor="test")
    assert clinic.google.channels[fresh.remote_id].stopped and await clinic.rows(conn_id) == []
    assert (await ensure_push(clinic.core, conn_id)).created == 0


async def test_graph_work_calendar_subscribed_while_an_event_is_tracked(clinic: Clinic) -> None:
    syncing(clinic)
    conn_id = await _graph_connection(clinic, [("me/calendar", "work")])
    practice_id, cal_id = await practice_of(clinic, conn_id)
    made = clinic.graph.put_event(clinic.mailbox, {
        "subject": "Hospital visit", "start": {"dateTime": slot(3, 10).replace(tzinfo=None).isoformat(),
                                               "timeZone": "UTC"},
        "end": {"dateTime": slot(3, 11).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}})
    assert clinic.graph.subs.subscriptions == {}
    done = await track(clinic.core, practice_id, event_ref(cal_id, made.id), actor="test")
    [row] = await clinic.rows(conn_id)
    assert set(clinic.graph.subs.subscriptions) == {row.remote_id} and row.calendar_id == cal_id

    clinic.graph.edit_event(clinic.mailbox, made.id, {
        "start": {"dateTime": slot(3, 16).replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": slot(3, 17).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}})
    await clinic.graph.subs.drain()
    await clinic.queue.drain()
    assert clinic.synced == [conn_id]
    moved = await activity(clinic)
    assert moved is not None and moved.start == slot(3, 16)

    await untrack(clinic.core, practice_id, done.ref, actor="test")
    assert clinic.graph.subs.subscriptions == {} and await clinic.rows(conn_id) == []


async def test_tracking_an_event_read_in_while_the_calendar_was_a_source_names_its_appointment(
    clinic: Clinic,
) -> None:
    conn_id = await clinic.add("google", clinic.google.oauth.grant(), [(PRIMARY, "source")])
    practice_id, cal_id = await practice_of(clinic, conn_id)
    event = clinic.google.server_insert(PRIMARY, {
        "summary": "Referral visit", "start": {"dateTime": slot(2, 10).isoformat()},
        "end": {"dateTime": slot(2, 11).isoformat()}})
    await sync_connection(clinic.core, conn_id)
    async with clinic.core.store.session() as s:
        [booked] = (await s.scalars(select(Appointment))).all()
    await set_calendar(clinic.core, cal_id, role="work", actor="cli:test")

    with pytest.raises(Conflict, match=f"is appointment A-{booked.id} already"):
        await track(clinic.core, practice_id, event_ref(cal_id, event["id"]), actor="test")
    assert await activity(clinic) is None
