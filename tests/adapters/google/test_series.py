"""Recurring series and their exceptions, read and written through the fake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from adapters.google.mapping import to_event_data, to_google
from adapters.google.provider import GoogleCalendar
from sync.contract.items import EventData, Window
from tests.adapters.google.conftest import PRIMARY
from tests.adapters.google.fakes.google import GoogleFake

LONDON = ZoneInfo("Europe/London")
WINDOW = Window(datetime(2030, 3, 1, tzinfo=UTC), datetime(2030, 9, 1, tzinfo=UTC))
WEEKLY = {
    "summary": "Group therapy",
    # 09:00 London; the series crosses no DST change (BST all along), so UTC is 08:00 every week.
    "start": {"dateTime": "2030-05-06T09:00:00", "timeZone": "Europe/London"},
    "end": {"dateTime": "2030-05-06T10:00:00", "timeZone": "Europe/London"},
    "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=6", "EXDATE;TZID=Europe/London:20300520T090000"],
}


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2030, 5, day, hour, tzinfo=LONDON)


async def test_full_sync_maps_series_exceptions_and_cancelled_occurrences(
    fake: GoogleFake, calendar: GoogleCalendar
) -> None:
    series = fake.server_insert(PRIMARY, WEEKLY)
    sid = series["id"]
    fake.server_patch(
        PRIMARY,
        f"{sid}_20300513T080000Z",
        {
            "start": {"dateTime": "2030-05-13T11:00:00+01:00"},
            "end": {"dateTime": "2030-05-13T12:00:00+01:00"},
        },
    )
    fake.server_delete(PRIMARY, f"{sid}_20300527T080000Z")

    changes = await calendar.changes(None, WINDOW)
    by_id = {i.remote_id: i.event for i in changes.items}
    assert set(by_id) == {sid, f"{sid}_20300513T080000Z"}
    master = by_id[sid]
    assert master.rrule == "FREQ=WEEKLY;COUNT=6" and master.tzid == "Europe/London"
    assert master.start == at(6)
    assert sorted(d.astimezone(UTC) for d in master.exdates) == [
        at(20).astimezone(UTC),
        at(27).astimezone(UTC),
    ]
    moved = by_id[f"{sid}_20300513T080000Z"]
    assert moved.recurrence_id == at(13) and moved.start == at(13, 11) and moved.uid == master.uid


async def test_incremental_sync_folds_a_cancelled_occurrence_into_the_series(
    fake: GoogleFake, calendar: GoogleCalendar
) -> None:
    sid = fake.server_insert(PRIMARY, WEEKLY)["id"]
    first = await calendar.changes(None, WINDOW)
    fake.server_delete(PRIMARY, f"{sid}_20300610T080000Z")
    delta = await calendar.changes(first.cursor, WINDOW)
    assert [i.remote_id for i in delta.items] == [sid]
    assert at(20).astimezone(UTC) in {d.astimezone(UTC) for d in delta.items[0].event.exdates}
    assert datetime(2030, 6, 10, 8, tzinfo=UTC) in {d.astimezone(UTC) for d in delta.items[0].event.exdates}
    assert delta.deleted_ids == [f"{sid}_20300610T080000Z"]

    fake.server_delete(PRIMARY, sid)
    gone = await calendar.changes(delta.cursor, WINDOW)
    assert sid in gone.deleted_ids and gone.items == []


async def test_writing_a_series_and_overriding_one_occurrence(fake: GoogleFake, calendar: GoogleCalendar) -> None:
    start = at(6)
    series = EventData(
        uid="A-9",
        summary="Rehab",
        start=start,
        end=start + timedelta(hours=1),
        tzid="Europe/London",
        rrule="FREQ=WEEKLY;COUNT=4",
        exdates=(at(13),),
        clinicbot_id="A-9",
    )
    created = await calendar.create(series, "series-key")
    assert created.event == series
    override = series.with_changes(rrule=None, exdates=(), recurrence_id=at(20), start=at(20, 14), end=at(20, 15))
    exception = await calendar.create(override, "exception-key")
    assert exception.remote_id == f"{created.remote_id}_20300520T080000Z"
    assert exception.event.recurrence_id == at(20) and exception.event.start == at(20, 14)
    again = await calendar.create(override, "exception-key")  # a retry edits the same occurrence
    assert again.remote_id == exception.remote_id
    assert len(fake.calendar(PRIMARY).exceptions_of(created.remote_id)) == 1


def test_mapping_reads_cancelled_marker_and_utc_events() -> None:
    resource = {
        "id": "abcde",
        "iCalUID": "abcde@google.com",
        "status": "tentative",
        "summary": "x",
        "start": {"dateTime": "2030-05-06T08:00:00Z"},
        "end": {"dateTime": "2030-05-06T09:00:00Z"},
        "extendedProperties": {"private": {"clinicbotId": "A-5"}},
    }
    event = to_event_data(resource)
    assert event.uid == "abcde@google.com" and event.clinicbot_id == "A-5" and event.status == "tentative"
    assert event.tzid is None and event.start == datetime(2030, 5, 6, 8, tzinfo=UTC)
    body = to_google(event)
    assert body["start"] == {"dateTime": "2030-05-06T08:00:00+00:00"} and "recurrence" not in body


def test_mapping_writes_exdates_in_the_series_zone() -> None:
    start = at(6)
    event = EventData(
        uid="u",
        summary="s",
        start=start,
        end=start + timedelta(hours=1),
        tzid="Europe/London",
        rrule="FREQ=DAILY;COUNT=3",
        exdates=(at(7).astimezone(UTC),),
    )
    assert to_google(event)["recurrence"] == [
        "RRULE:FREQ=DAILY;COUNT=3",
        "EXDATE;TZID=Europe/London:20300507T090000",
    ]
    day = datetime(2030, 5, 6, tzinfo=UTC)
    all_day = EventData(
        uid="u",
        summary="s",
        start=day,
        end=day + timedelta(days=1),
        all_day=True,
        rrule="FREQ=DAILY;COUNT=3",
        exdates=(day + timedelta(days=1),),
    )
    assert to_google(all_day)["recurrence"][1] == "EXDATE;VALUE=DATE:20300507"
    assert to_event_data({"id": "x", **to_google(all_day)}).exdates == (day + timedelta(days=1),)
