"""NylasCalendar against the fake Nylas: paging, incremental polls, retries without duplicates,
read-only events, recurring occurrences and Nylas's error bodies."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapters.kit.http import RetryPolicy
from adapters.nylas.mapping import KEY_FIELD
from adapters.nylas.provider import NylasCalendar
from sync.contract import AlreadyExists, AuthExpired, NotFound, RateLimited, Refused
from sync.contract.items import EventData, Window
from sync.runtime.settings import Settings
from tests.adapters.nylas.conftest import make_conn, primary
from tests.adapters.nylas.fakes.nylas import Grant, NylasFake, timespan

LONDON = ZoneInfo("Europe/London")


def soon(days: int = 2, hour: int = 10) -> datetime:
    day = datetime.now(LONDON).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, tzinfo=LONDON)


#: One window for the whole module: a poll with another window than its cursor's lists in full.
WINDOW = Window.around(datetime.now(UTC).replace(microsecond=0))


def window() -> Window:
    return WINDOW


def visit(uid: str = "appt-1", **fields: object) -> EventData:
    start = soon()
    values: dict[str, object] = {"uid": uid, "summary": "Outreach visit", "start": start,
                                 "end": start + timedelta(minutes=30), "tzid": "Europe/London",
                                 "clinicbot_id": "A-1"}
    values.update(fields)
    return EventData(**values)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_a_retried_create_finds_its_copy_by_metadata_and_makes_no_second(
    fake: NylasFake, grant: Grant, calendar: NylasCalendar
) -> None:
    first = await calendar.create(visit(), idempotency_key="op-41")
    with pytest.raises(AlreadyExists) as again:
        await calendar.create(visit(), idempotency_key="op-41")
    assert again.value.remote_id == first.remote_id
    assert len(fake.live_events(grant, primary(grant))) == 1
    lookups = [r for r in fake.requests if r.method == "GET" and "metadata_pair" in r.query]
    assert lookups and lookups[-1].query["metadata_pair"] == f"{KEY_FIELD}:op-41"
    assert [r.method for r in fake.requests].count("POST") == 1


async def test_a_copy_deleted_by_hand_is_made_again_under_the_same_key(
    fake: NylasFake, grant: Grant, calendar: NylasCalendar
) -> None:
    first = await calendar.create(visit(), idempotency_key="op-7")
    fake.server_delete(grant, primary(grant), first.remote_id)
    second = await calendar.create(visit(), idempotency_key="op-7")
    assert second.remote_id != first.remote_id
    assert list(fake.live_events(grant, primary(grant))) == [second.remote_id]


async def test_create_answers_200_and_keeps_zone_and_ids(calendar: NylasCalendar) -> None:
    created = await calendar.create(visit(), idempotency_key="k")
    got = await calendar.get(created.remote_id)
    assert got.event.tzid == "Europe/London" and got.event.start == soon()
    assert got.event.clinicbot_id == "A-1" and got.event.uid == "appt-1"
    assert got.etag == created.etag


async def test_update_replaces_when_and_keeps_what_others_wrote(
    fake: NylasFake, grant: Grant, calendar: NylasCalendar
) -> None:
    created = await calendar.create(visit(), idempotency_key="k")
    cal = primary(grant)
    fake.server_edit(grant, cal, created.remote_id, {"participants": [{"email": "a@work.example"}],
                                                     "metadata": {**fake.live_events(grant, cal)[created.remote_id]
                                                                  ["metadata"], "crm": "lead-9"}})
    current = await calendar.get(created.remote_id)
    moved = visit(start=soon(hour=14), end=soon(hour=15))
    updated = await calendar.update(created.remote_id, moved, current.etag)
    stored = fake.live_events(grant, cal)[created.remote_id]
    assert updated.event.start == soon(hour=14)
    assert stored["participants"] == [{"email": "a@work.example"}]
    assert stored["metadata"]["crm"] == "lead-9" and stored["metadata"][KEY_FIELD] == "k"


async def test_read_only_events_and_calendars_are_never_written(
    fake: NylasFake, grant: Grant, nsettings: Settings
) -> None:
    cal = primary(grant)
    invite = fake.server_add(grant, cal, {"title": "Board meeting", "when": timespan(soon()), "read_only": True})
    shared = fake.add_calendar(grant, "holidays", "Holidays", read_only=True)
    provider = NylasCalendar(make_conn(grant), cal, nsettings)
    other = NylasCalendar(make_conn(grant), shared.id, nsettings)
    try:
        before = len(fake.requests)
        with pytest.raises(Refused):
            await provider.update(invite["id"], visit(), None)
        with pytest.raises(Refused):
            await provider.delete(invite["id"], None)
        with pytest.raises(Refused):
            await other.create(visit(), idempotency_key="x")
        writes = [r for r in fake.requests[before:] if r.method in ("POST", "PUT", "DELETE")]
        assert writes == []
        assert fake.live_events(grant, cal)[invite["id"]]["title"] == "Board meeting"
    finally:
        await provider.aclose()
        await other.aclose()


async def test_listing_follows_next_cursor_as_page_token(
    fake: NylasFake, grant: Grant, calendar: NylasCalendar
) -> None:
    for n in range(5):
        fake.server_add(grant, primary(grant), {"title": f"Event {n}", "when": timespan(soon(days=n + 1))})
    listing = await calendar.changes(None, window())
    assert listing.full and len(listing.items) == 5
    pages = [r for r in fake.requests if r.path.endswith("/events") and r.method == "GET"]
    assert len(pages) == 3 and "page_token" not in pages[0].query
    assert all("page_token" in p.query for p in pages[1:])


async def test_polls_ask_only_for_updates_and_see_cancellations(
    fake: NylasFake, grant: Grant, nsettings: Settings
) -> None:
    clock = Clock()
    cal = primary(grant)
    provider = NylasCalendar(make_conn(grant), cal, nsettings, clock=clock)
    try:
        kept = fake.server_add(grant, cal, {"title": "Kept", "when": timespan(soon())})
        gone = fake.server_add(grant, cal, {"title": "Gone", "when": timespan(soon(hour=12))})
        first = await provider.changes(None, window())
        quiet = await provider.changes(first.cursor, window())
        assert not quiet.full and quiet.items == [] and quiet.deleted_ids == []
        polls = [r.query for r in fake.requests if "updated_after" in r.query]
        assert polls and polls[-1]["show_cancelled"] == "true"
        fake.advance(5)
        fake.server_edit(grant, cal, kept["id"], {"title": "Kept, moved"})
        fake.server_delete(grant, cal, gone["id"])  # a Google grant: the event stays, cancelled
        later = await provider.changes(quiet.cursor, window())
        assert [i.event.summary for i in later.items] == ["Kept, moved"]
        assert later.deleted_ids == [gone["id"]]
    finally:
        await provider.aclose()


async def test_an_event_deleted_outright_or_moved_away_is_told_apart_at_the_next_poll(
    fake: NylasFake, nsettings: Settings
) -> None:
    grant = fake.add_grant("outreach@work.example", provider="microsoft")
    clock = Clock()
    cal = primary(grant)
    provider = NylasCalendar(make_conn(grant), cal, nsettings, clock=clock)
    try:
        gone = fake.server_add(grant, cal, {"title": "Gone", "when": timespan(soon())})
        kept = fake.server_add(grant, cal, {"title": "Kept", "when": timespan(soon(hour=14))})
        away = fake.server_add(grant, cal, {"title": "Away", "when": timespan(soon(hour=16))})
        first = await provider.changes(None, window())
        fake.server_delete(grant, cal, gone["id"])  # Microsoft deletes at once: no cancelled event to read
        # Moved out of the window: no updated_after answer within the window has it, and it is not deleted.
        fake.server_edit(grant, cal, away["id"], {"when": timespan(soon(days=300))})
        clock.now += 3600
        poll = await provider.changes(first.cursor, window())
        assert not poll.full and poll.deleted_ids == [gone["id"]]
        assert [(i.remote_id, i.event.start) for i in poll.items] == [(away["id"], soon(days=300))]
        ids_only = [r for r in fake.requests if r.query.get("select") == "id"]
        assert ids_only and "updated_after" not in ids_only[-1].query
        again = await provider.changes(poll.cursor, window())
        assert again.deleted_ids == [] and again.items == []
        assert gone["id"] not in str(again.cursor) and kept["id"] not in str(again.cursor)  # ids kept packed
        clock.now += 24 * 3600
        assert (await provider.changes(again.cursor, window())).full  # a full listing once a day
    finally:
        await provider.aclose()


async def test_a_window_moved_by_the_clock_keeps_polling_and_reads_its_new_edge(
    fake: NylasFake, grant: Grant, nsettings: Settings
) -> None:
    clock = Clock()
    cal = primary(grant)
    provider = NylasCalendar(make_conn(grant), cal, nsettings, clock=clock)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        first = await provider.changes(None, Window.around(now))
        fake.advance(-3600 * 24 * 30)  # made long ago, just beyond today's window
        far = fake.server_add(grant, cal, {"title": "Far", "when": timespan(now + timedelta(days=180, hours=5))})
        fake.advance(3600 * 24 * 30)
        clock.now += 3600
        poll = await provider.changes(first.cursor, Window.around(now + timedelta(hours=6)))
        assert not poll.full and [i.remote_id for i in poll.items] == [far["id"]]
    finally:
        await provider.aclose()


async def test_recurring_occurrences_keep_their_own_and_their_master_ids(
    fake: NylasFake, grant: Grant, calendar: NylasCalendar
) -> None:
    cal = primary(grant)
    master = fake.server_add(grant, cal, {"title": "Weekly round", "when": timespan(soon()),
                                          "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=2"], "ical_uid": "round@work"})
    for week in range(2):
        start = soon() + timedelta(weeks=week)
        stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        fake.server_add(grant, cal, {"id": f"{master['id']}_{stamp}", "title": "Weekly round",
                                     "when": timespan(start), "master_event_id": master["id"],
                                     "ical_uid": "round@work", "original_start_time": int(start.timestamp())})
    listing = await calendar.changes(None, window())
    assert sorted(i.remote_id for i in listing.items) == sorted(
        f"{master['id']}_{(soon() + timedelta(weeks=w)).astimezone(UTC):%Y%m%dT%H%M%SZ}" for w in range(2))
    assert {i.event.uid for i in listing.items} == {"round@work"}
    assert sorted(i.event.recurrence_id for i in listing.items if i.event.recurrence_id) == [
        soon(), soon() + timedelta(weeks=1)]


async def test_nylas_errors_map_onto_the_shared_tree(
    fake: NylasFake, grant: Grant, nsettings: Settings, calendar: NylasCalendar
) -> None:
    with pytest.raises(NotFound):
        await calendar.get("no-such-event")
    fake.fail(429, "rate_limit_error", "Too many requests, please try again shortly.", retry_after="120")
    with pytest.raises(RateLimited) as limited:
        await calendar.changes(None, window())
    assert limited.value.retry_after == 120
    fake.fail(429, "nylas_rate_limit_exceeded", "Too many requests", retry_after="0")
    assert (await calendar.changes(None, window())).full  # a short Retry-After is waited out and retried
    fake.expire_grant(grant)
    with pytest.raises(AuthExpired):
        await calendar.changes(None, window())
    wrong_key = NylasCalendar(make_conn(grant), primary(grant), nsettings.model_copy())
    wrong_key.api._http.headers["Authorization"] = "Bearer not-the-key"
    try:
        with pytest.raises(Refused) as refused:
            await wrong_key.get("x")
        assert "CLINICBOT_NYLAS_API_KEY" in str(refused.value)
    finally:
        await wrong_key.aclose()


async def test_a_calendar_without_writes_says_so_before_calling(
    fake: NylasFake, grant: Grant, nsettings: Settings
) -> None:
    provider = NylasCalendar(make_conn(grant, read_only_calendars=[primary(grant)]), primary(grant), nsettings,
                             policy=RetryPolicy(attempts=1))
    try:
        before = len(fake.requests)
        with pytest.raises(Refused):
            await provider.create(visit(), idempotency_key="k")
        assert len(fake.requests) == before
    finally:
        await provider.aclose()
