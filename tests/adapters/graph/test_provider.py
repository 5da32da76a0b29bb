"""GraphCalendar against the fake: delta paging and expiry, etags, transactionId, $batch, throttling."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapters.graph import open_calendar
from adapters.graph.provider import Create, Delete, GraphCalendar, Update, transaction_id
from sync.contract import (
    AlreadyExists,
    AuthExpired,
    ConnectionInfo,
    CursorExpired,
    NotFound,
    RateLimited,
    Refused,
    WrongEtag,
)
from sync.contract.items import EventData, RemoteItem, Window
from sync.runtime.settings import Settings
from tests.adapters.graph.conftest import CLIENT_ID, CLIENT_SECRET, TENANT, Saved, sign_in, transports
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.adapters.graph.fakes.graph_throttle import ThrottlePolicy
from tests.conftest import settings_with

START = datetime(2030, 3, 4, 9, 0, tzinfo=ZoneInfo("Europe/London"))
WINDOW = Window(START - timedelta(days=2), START + timedelta(days=40))


def appointment(n: int, **changes: object) -> EventData:
    start = START + timedelta(days=n)
    base = EventData(
        uid=f"appt-{n}",
        summary=f"Physio · J.D. #{n}",
        start=start,
        end=start + timedelta(minutes=45),
        tzid="Europe/London",
        location="Room 2",
        description="Bring referral",
        clinicbot_id=f"A-{n}",
    )
    return base.with_changes(**changes) if changes else base


async def test_create_get_update_delete_round_trip(calendar: GraphCalendar, mailbox: Mailbox) -> None:
    created = await calendar.create(appointment(1), "op-1")
    stored = mailbox.find_event(created.remote_id)
    assert stored is not None and stored.fields["transactionId"] == transaction_id("op-1")
    assert "clinicbot" in stored.fields["categories"] and stored.fields["showAs"] == "busy"
    got = await calendar.get(created.remote_id)
    assert got.event.clinicbot_id == "A-1" and got.event.tzid == "Europe/London"
    assert (got.event.start, got.event.end, got.event.summary) == (
        START + timedelta(days=1),
        START + timedelta(days=1, minutes=45),
        "Physio · J.D. #1",
    )
    assert got.event.description == "Bring referral" and got.event.location == "Room 2"
    moved = await calendar.update(
        created.remote_id,
        appointment(1, start=START + timedelta(days=2), end=START + timedelta(days=2, hours=1)),
        got.etag,
    )
    assert moved.etag != got.etag and moved.event.start == START + timedelta(days=2)
    await calendar.delete(created.remote_id, moved.etag)
    with pytest.raises(NotFound):
        await calendar.get(created.remote_id)
    with pytest.raises(NotFound):
        await calendar.delete(created.remote_id, None)


async def test_retried_create_makes_no_second_copy(calendar: GraphCalendar, mailbox: Mailbox) -> None:
    first = await calendar.create(appointment(2), "op-same")
    again = await calendar.create(appointment(2), "op-same")  # the outbox retrying a lost answer
    assert again.remote_id == first.remote_id and again.etag == first.etag
    with pytest.raises(AlreadyExists):  # the key already made a different event
        await calendar.create(appointment(2, summary="changed meanwhile"), "op-same")
    other = await calendar.create(appointment(2), "op-other")
    assert other.remote_id != first.remote_id
    assert len(mailbox.default_calendar.events) == 2


async def test_stale_etag_is_wrong_etag_and_changes_nothing(
    calendar: GraphCalendar, fake: GraphFake, mailbox: Mailbox
) -> None:
    created = await calendar.create(appointment(3), "op-3")
    fake.edit_event(mailbox, created.remote_id, {"subject": "moved by hand in Outlook"})
    with pytest.raises(WrongEtag):
        await calendar.update(created.remote_id, appointment(3, summary="ours"), created.etag)
    with pytest.raises(WrongEtag):
        await calendar.delete(created.remote_id, created.etag)
    assert (await calendar.get(created.remote_id)).event.summary == "moved by hand in Outlook"


async def test_delta_follows_pages_then_reports_changes_and_removals(
    delegated: ConnectionInfo, settings: Settings, fake: GraphFake, mailbox: Mailbox
) -> None:
    calendar = open_calendar(replace(delegated, config={"page_size": 3}), "me/calendar", settings)
    try:
        made = [await calendar.create(appointment(n), f"op-{n}") for n in range(8)]
        fake.http_requests.clear()
        full = await calendar.changes(None, WINDOW)
        assert full.full and sorted(i.remote_id for i in full.items) == sorted(m.remote_id for m in made)
        assert sum(1 for m, p in fake.http_requests if "calendarView/delta" in p) == 3  # 8 items, 3 per page
        # Our copies come back with uid and appointment id, re-read in one $batch (delta can't expand).
        assert {(i.event.uid, i.event.clinicbot_id) for i in full.items} == {(f"appt-{n}", f"A-{n}") for n in range(8)}
        assert fake.http_requests.count(("POST", "/$batch")) == 1
        fake.remove_event(mailbox, made[0].remote_id)
        fake.edit_event(mailbox, made[1].remote_id, {"subject": "Renamed"})
        fake.put_event(
            mailbox,
            {
                "subject": "Lunch",
                "start": {"dateTime": "2030-03-05T12:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2030-03-05T13:00:00", "timeZone": "UTC"},
            },
        )
        later = await calendar.changes(full.cursor, WINDOW)
        lunch = next(i for i in later.items if i.event.summary == "Lunch")
        assert lunch.event.clinicbot_id is None and lunch.event.uid.startswith("040000008200E000")
        later.items.remove(lunch)
        assert not later.full and later.deleted_ids == [made[0].remote_id]
        assert [(i.remote_id, i.event.summary) for i in later.items] == [(made[1].remote_id, "Renamed")]
        quiet = await calendar.changes(later.cursor, WINDOW)
        assert quiet.items == [] and quiet.deleted_ids == []
    finally:
        await calendar.aclose()


async def test_expired_delta_token_raises_cursor_expired_then_full_resync(
    calendar: GraphCalendar, fake: GraphFake
) -> None:
    await calendar.create(appointment(4), "op-4")
    first = await calendar.changes(None, WINDOW)
    fake.expire_delta_tokens()
    with pytest.raises(CursorExpired):
        await calendar.changes(first.cursor, WINDOW)
    again = await calendar.changes(None, WINDOW)
    assert again.full and len(again.items) == 1


async def test_cursor_outside_its_window_or_foreign_is_expired(calendar: GraphCalendar) -> None:
    first = await calendar.changes(None, WINDOW)
    later = Window(WINDOW.start + timedelta(days=30), WINDOW.end + timedelta(days=30))
    with pytest.raises(CursorExpired):
        await calendar.changes(first.cursor, later)
    assert first.cursor is not None
    forged = first.cursor.replace(calendar.client.base, "https://attacker.example/v1.0")
    with pytest.raises(CursorExpired):
        await calendar.changes(forged, WINDOW)
    with pytest.raises(CursorExpired):
        await calendar.changes("not json", WINDOW)
    slid = Window(WINDOW.start + timedelta(days=1), WINDOW.end + timedelta(days=1))
    assert (await calendar.changes(first.cursor, slid)).full is False  # a day's slide reuses the round


async def test_show_as_free_and_cancelled_copies(
    delegated: ConnectionInfo, settings: Settings, mailbox: Mailbox
) -> None:
    conn = replace(delegated, config={"show_as_free_calendars": ["me/calendar"]})
    calendar = open_calendar(conn, "me/calendar", settings)
    try:
        created = await calendar.create(appointment(5), "op-5")
        assert mailbox.find_event(created.remote_id).fields["showAs"] == "free"  # type: ignore[union-attr]
        cancelled = await calendar.update(created.remote_id, appointment(5, status="cancelled"), created.etag)
        assert cancelled.event.status == "cancelled" and cancelled.event.summary == "Physio · J.D. #5"
        assert mailbox.find_event(created.remote_id).fields["subject"].startswith("Cancelled: ")  # type: ignore[union-attr]
    finally:
        await calendar.aclose()


async def test_read_only_calendar_refuses_writes(delegated: ConnectionInfo, settings: Settings) -> None:
    conn = replace(delegated, config={"read_only_calendars": ["me/calendar"]})
    calendar = open_calendar(conn, "me/calendar", settings)
    with pytest.raises(Refused):
        await calendar.create(appointment(1), "op")
    await calendar.aclose()
    with pytest.raises(Refused):
        open_calendar(delegated, "me/calendar/../../users/x", settings)


async def test_apply_sends_batches_of_twenty_and_reports_per_item(
    calendar: GraphCalendar, fake: GraphFake, mailbox: Mailbox
) -> None:
    existing = await calendar.create(appointment(0), "op-existing")
    fake.http_requests.clear()
    ops: list[Create | Update | Delete] = [Create(appointment(n), f"bulk-{n}") for n in range(1, 31)]
    ops += [
        Update(existing.remote_id, appointment(0, summary="Stale"), 'W/"stale"'),
        Delete("AAMkdoesnotexist", None),
    ]
    results = await calendar.apply(ops)
    # 32 ops -> two $batch requests; the delete chained after the failed update answers 424 (not
    # run) and goes again in a third.
    assert [m for m, p in fake.http_requests] == ["POST", "POST", "POST"]
    assert all(isinstance(r, RemoteItem) for r in results[:30])
    assert isinstance(results[30], WrongEtag) and isinstance(results[31], NotFound)
    assert len(mailbox.default_calendar.events) == 31
    again = await calendar.apply(ops[:30])  # the outbox retrying the same creates
    assert [r.remote_id for r in again] == [r.remote_id for r in results[:30]]  # type: ignore[union-attr]
    assert len(mailbox.default_calendar.events) == 31


async def test_throttled_batch_items_are_resent_after_retry_after(settings: Settings) -> None:
    fake = GraphFake(throttle=ThrottlePolicy.scaled(window=0.3, budget=15))
    await fake.start()
    fake.login.register_app(CLIENT_ID, CLIENT_SECRET)
    try:
        mbx = fake.add_user("throttled@clinic.example", tenant_id=TENANT)
        local = settings_with(graph_url=fake.url, graph_client_id=CLIENT_ID, graph_client_secret=CLIENT_SECRET)
        conn = ConnectionInfo(
            "graph", mbx.user.upn, {}, await sign_in(fake, local, mbx.user.upn), Saved(), transports(fake)
        )
        calendar = open_calendar(conn, "me/calendar", local)
        try:
            results = await calendar.apply([Create(appointment(n % 30), f"t-{n}") for n in range(40)])
        finally:
            await calendar.aclose()
        assert all(isinstance(r, RemoteItem) for r in results)
        assert len(mbx.default_calendar.events) == 40
        assert fake.throttle.stats[mbx.user.oid].rejected_budget > 0
    finally:
        await fake.stop()


async def test_plain_request_throttled_for_long_raises_rate_limited(
    calendar: GraphCalendar, fake: GraphFake, mailbox: Mailbox
) -> None:
    fake.throttle.policy = ThrottlePolicy(budget=1, window=600.0)
    await calendar.create(appointment(1), "op-a")
    with pytest.raises(RateLimited) as caught:
        await calendar.create(appointment(2), "op-b")
    assert caught.value.retry_after is not None and caught.value.retry_after > 500
    assert len(mailbox.default_calendar.events) == 1


async def test_free_busy_uses_get_schedule_for_work_accounts(
    calendar: GraphCalendar, fake: GraphFake, mailbox: Mailbox
) -> None:
    await calendar.create(appointment(1), "op-1")
    await calendar.create(appointment(2, transparent=True), "op-2")
    busy = await calendar.free_busy(WINDOW)
    assert [(b.start, b.end) for b in busy] == [(START + timedelta(days=1), START + timedelta(days=1, minutes=45))]
    assert any(p.endswith("/calendar/getSchedule") for _, p in fake.http_requests)


async def test_free_busy_uses_calendar_view_for_personal_accounts(fake: GraphFake, settings: Settings) -> None:
    personal = fake.add_user("someone@outlook.com", personal=True)
    creds = await sign_in(fake, settings, personal.user.upn)
    assert creds["personal"] is True
    calendar = open_calendar(
        ConnectionInfo("graph", personal.user.upn, {}, creds, Saved(), transports(fake)),
        "me/calendar",
        settings,
    )
    try:
        await calendar.create(appointment(1), "op-1")
        busy = await calendar.free_busy(WINDOW)
    finally:
        await calendar.aclose()
    assert [b.start for b in busy] == [START + timedelta(days=1)]
    assert not any(p.endswith("getSchedule") for _, p in fake.http_requests)


async def test_all_day_and_recurring_events_read_back(
    calendar: GraphCalendar, fake: GraphFake, mailbox: Mailbox
) -> None:
    fake.put_event(
        mailbox,
        {
            "subject": "Conference",
            "isAllDay": True,
            "start": {"dateTime": "2030-03-10T00:00:00", "timeZone": "GMT Standard Time"},
            "end": {"dateTime": "2030-03-12T00:00:00", "timeZone": "GMT Standard Time"},
        },
    )
    fake.put_event(
        mailbox,
        {
            "subject": "Team huddle",
            "start": {"dateTime": "2030-03-04T08:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2030-03-04T08:15:00", "timeZone": "Pacific Standard Time"},
            "recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                "range": {"type": "numbered", "startDate": "2030-03-04", "numberOfOccurrences": 3},
            },
        },
    )
    items = (await calendar.changes(None, WINDOW)).items
    conference = next(i for i in items if i.event.summary == "Conference")
    assert conference.event.all_day and conference.event.start == datetime(
        2030, 3, 10, tzinfo=ZoneInfo("Europe/London")
    )
    huddles = sorted((i for i in items if i.event.summary == "Team huddle"), key=lambda i: i.event.start)
    assert len(huddles) == 3 and len({h.remote_id for h in huddles}) == 3
    assert all(h.event.recurrence_id == h.event.start for h in huddles)
    # 8:00 in Los Angeles stays 8:00 across the US DST change on 10 March 2030.
    assert [h.event.start.astimezone(ZoneInfo("America/Los_Angeles")).hour for h in huddles] == [8, 8, 8]


async def test_batch_stops_with_auth_expired_when_the_sign_in_is_revoked(
    calendar: GraphCalendar, fake: GraphFake, mailbox: Mailbox
) -> None:
    await calendar.create(appointment(0), "op-warm")
    fake.login.revoke_refresh_tokens()
    fake.login.expire_access_tokens()
    with pytest.raises(AuthExpired):
        await calendar.apply([Create(appointment(n), f"late-{n}") for n in range(1, 50)])
    assert len(mailbox.default_calendar.events) == 1
