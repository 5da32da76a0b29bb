"""GoogleCalendar against the fake: sync tokens, 410 resync, idempotent creates, etags, series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapters.google.mapping import PRIVATE_ID, event_id_for
from adapters.google.provider import GoogleCalendar
from sync.contract import AlreadyExists, CursorExpired, NotFound, Refused, WrongEtag
from sync.contract.items import EventData, Window
from sync.runtime.settings import Settings
from tests.adapters.google.conftest import PRIMARY, Saved, make_conn
from tests.adapters.google.fakes.google import GoogleFake

LONDON = ZoneInfo("Europe/London")
WINDOW = Window(datetime(2030, 4, 1, tzinfo=UTC), datetime(2030, 9, 1, tzinfo=UTC))


def appointment(uid: str = "A-1", day: int = 6, **changes: object) -> EventData:
    start = datetime(2030, 5, day, 9, 0, tzinfo=LONDON)
    base = EventData(
        uid=uid,
        summary="Physio (J.D.)",
        start=start,
        end=start + timedelta(minutes=45),
        tzid="Europe/London",
        clinicbot_id=uid,
    )
    return base.with_changes(**changes) if changes else base


def hand_made(summary: str, day: int, **extra: object) -> dict[str, object]:
    return {
        "summary": summary,
        "start": {"dateTime": f"2030-05-{day:02d}T10:00:00+01:00", "timeZone": "Europe/London"},
        "end": {"dateTime": f"2030-05-{day:02d}T11:00:00+01:00", "timeZone": "Europe/London"},
        **extra,
    }


async def test_first_run_lists_all_pages_then_goes_incremental(fake: GoogleFake, calendar: GoogleCalendar) -> None:
    ids = [fake.server_insert(PRIMARY, hand_made(f"e{d}", d))["id"] for d in range(1, 8)]
    fake.server_insert(
        PRIMARY,
        hand_made("far future", 1)
        | {"start": {"dateTime": "2031-05-01T10:00:00Z"}, "end": {"dateTime": "2031-05-01T11:00:00Z"}},
    )
    first = await calendar.changes(None, WINDOW)
    assert first.full and sorted(i.remote_id for i in first.items) == sorted(ids)
    list_calls = [r for r in fake.requests if r.path.endswith("/events") and r.method == "GET"]
    assert len(list_calls) == 3  # 7 events at 3 per page
    assert all("timeMin" in r.query for r in list_calls[:1])
    assert first.cursor

    fake.server_patch(PRIMARY, ids[0], {"summary": "moved"})
    fake.server_delete(PRIMARY, ids[1])
    second = await calendar.changes(first.cursor, WINDOW)
    assert not second.full
    assert [(i.remote_id, i.event.summary) for i in second.items] == [(ids[0], "moved")]
    assert second.deleted_ids == [ids[1]]
    assert "timeMin" not in fake.requests[-1].query and fake.requests[-1].query["syncToken"] == [first.cursor]

    third = await calendar.changes(second.cursor, WINDOW)
    assert third.items == [] and third.deleted_ids == []


async def test_invalidated_sync_token_raises_cursor_expired(fake: GoogleFake, calendar: GoogleCalendar) -> None:
    fake.server_insert(PRIMARY, hand_made("kept", 3))
    first = await calendar.changes(None, WINDOW)
    fake.calendar(PRIMARY).invalidate_sync_tokens()
    with pytest.raises(CursorExpired):
        await calendar.changes(first.cursor, WINDOW)
    again = await calendar.changes(None, WINDOW)
    assert again.full and [i.event.summary for i in again.items] == ["kept"]


async def test_create_is_idempotent_on_the_key(fake: GoogleFake, calendar: GoogleCalendar) -> None:
    created = await calendar.create(appointment(), "appt-1:cal-7")
    assert created.remote_id == event_id_for("appt-1:cal-7")
    assert created.event.clinicbot_id == "A-1" and created.event.uid == "A-1"
    stored = fake.calendar(PRIMARY).get(created.remote_id)
    assert stored["extendedProperties"]["private"][PRIVATE_ID] == "A-1"
    with pytest.raises(AlreadyExists):
        await calendar.create(appointment(), "appt-1:cal-7")
    assert len([e for e in fake.calendar(PRIMARY).events.values() if e.resource["status"] != "cancelled"]) == 1


def test_event_ids_are_valid_base32hex_and_deterministic() -> None:
    from tests.adapters.google.fakes.google_store import is_valid_event_id

    keys = ["x", "appt-1:cal-7", "ü" * 900, "A" * 5000]
    assert all(is_valid_event_id(event_id_for(k)) for k in keys)
    assert event_id_for("appt-1") == event_id_for("appt-1") != event_id_for("appt-2")


async def test_update_with_a_stale_etag_is_wrong_etag(fake: GoogleFake, calendar: GoogleCalendar) -> None:
    created = await calendar.create(appointment(), "k1")
    moved = await calendar.update(created.remote_id, appointment(day=7), created.etag)
    assert moved.event.start == datetime(2030, 5, 7, 9, 0, tzinfo=LONDON) and moved.etag != created.etag
    with pytest.raises(WrongEtag):
        await calendar.update(created.remote_id, appointment(day=8), created.etag)
    assert (await calendar.get(created.remote_id)).event.start.day == 7
    assert fake.requests[-2].if_match == created.etag


async def test_update_and_delete_of_a_deleted_event_are_not_found(fake: GoogleFake, calendar: GoogleCalendar) -> None:
    created = await calendar.create(appointment(), "k2")
    await calendar.delete(created.remote_id, created.etag)
    with pytest.raises(NotFound):
        await calendar.get(created.remote_id)
    with pytest.raises(NotFound):
        await calendar.update(created.remote_id, appointment(day=9), None)
    with pytest.raises(NotFound):
        await calendar.delete(created.remote_id, None)
    assert fake.calendar(PRIMARY).get(created.remote_id)["status"] == "cancelled"


async def test_all_day_and_transparency_survive_a_round_trip(calendar: GoogleCalendar) -> None:
    day = datetime(2030, 6, 1, tzinfo=UTC)
    event = EventData(
        uid="A-2",
        summary="Leave",
        start=day,
        end=day + timedelta(days=2),
        all_day=True,
        transparent=True,
        description="desk note",
        location="Room 2",
        clinicbot_id="A-2",
    )
    created = await calendar.create(event, "k3")
    assert created.event == event
    switched = await calendar.update(created.remote_id, appointment(uid="A-2", clinicbot_id="A-2"), created.etag)
    assert not switched.event.all_day and switched.event.tzid == "Europe/London"


async def test_send_updates_follows_the_connection(fake: GoogleFake, gsettings: Settings) -> None:
    provider = GoogleCalendar(make_conn(fake, Saved(), send_updates="all"), PRIMARY, gsettings)
    try:
        created = await provider.create(appointment(), "k4")
        await provider.delete(created.remote_id, created.etag)
    finally:
        await provider.aclose()
    assert [s[2] for s in fake.send_updates] == ["all", "all"]
    with pytest.raises(Refused):
        GoogleCalendar(make_conn(fake, Saved(), send_updates="everyone"), PRIMARY, gsettings)


async def test_read_only_calendars_refuse_writes(fake: GoogleFake, gsettings: Settings) -> None:
    provider = GoogleCalendar(make_conn(fake, Saved(), read_only_calendars=[PRIMARY]), PRIMARY, gsettings)
    try:
        with pytest.raises(Refused):
            await provider.create(appointment(), "k5")
    finally:
        await provider.aclose()
    assert not [r for r in fake.requests if r.method == "POST"]


async def test_free_busy_skips_transparent_and_cancelled(fake: GoogleFake, calendar: GoogleCalendar) -> None:
    fake.server_insert(PRIMARY, hand_made("busy", 2))
    fake.server_insert(PRIMARY, hand_made("free", 3, transparency="transparent"))
    gone = fake.server_insert(PRIMARY, hand_made("gone", 4))
    fake.server_delete(PRIMARY, gone["id"])
    busy = await calendar.free_busy(WINDOW)
    assert [(b.start, b.end) for b in busy] == [
        (datetime(2030, 5, 2, 9, 0, tzinfo=UTC), datetime(2030, 5, 2, 10, 0, tzinfo=UTC))
    ]


async def test_a_copy_deleted_by_hand_is_created_again_under_the_keys_next_id(
    fake: GoogleFake, calendar: GoogleCalendar
) -> None:
    """Google keeps a deleted event's id as a tombstone (409 for good): the re-create takes a new id."""
    first = await calendar.create(appointment(), "appt-3:cal-7")
    await calendar.delete(first.remote_id, first.etag)
    again = await calendar.create(appointment(), "appt-3:cal-7")
    assert again.remote_id != first.remote_id and again.event.uid == "A-1"
    assert (await calendar.get(again.remote_id)).event.start == appointment().start
    with pytest.raises(AlreadyExists) as retried:
        await calendar.create(appointment(), "appt-3:cal-7")
    assert retried.value.remote_id == again.remote_id
    live = [e for e in fake.calendar(PRIMARY).events.values() if e.resource["status"] != "cancelled"]
    assert len(live) == 1


async def test_a_retried_create_names_the_event_that_holds_the_key(calendar: GoogleCalendar) -> None:
    created = await calendar.create(appointment(), "appt-4:cal-7")
    with pytest.raises(AlreadyExists) as retried:
        await calendar.create(appointment(), "appt-4:cal-7")
    assert retried.value.remote_id == created.remote_id == event_id_for("appt-4:cal-7")
