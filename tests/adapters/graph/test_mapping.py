"""Graph event JSON <-> EventData: Windows zones, all-day, recurrence <-> RRULE, bad payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from adapters.graph.mapping import CLINICBOT_PROPERTY_ID, CLINICBOT_UID_PROPERTY_ID, event_from_graph, event_to_graph
from adapters.graph.recurrence import pattern_to_rrule, rrule_to_pattern
from adapters.graph.timezones import iana_to_windows, to_iana
from sync.contract import BadPayload, Refused
from sync.contract.items import EventData

LONDON = ZoneInfo("Europe/London")


def graph_event(**extra: object) -> dict[str, object]:
    return {
        "id": "AAMk1",
        "@odata.etag": 'W/"ck1"',
        "subject": "Check-up",
        "start": {"dateTime": "2030-07-01T08:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2030-07-01T08:30:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "GMT Standard Time",
        "showAs": "busy",
        "type": "singleInstance",
        **extra,
    }


def test_windows_zone_names_map_both_ways() -> None:
    assert to_iana("W. Europe Standard Time") == "Europe/Berlin"
    assert to_iana("Europe/Paris") == "Europe/Paris"
    assert to_iana("Not A Zone") is None and to_iana("Mars/Olympus") is None
    assert iana_to_windows("America/New_York") == "Eastern Standard Time"
    assert iana_to_windows("Europe/Dublin") == "GMT Standard Time"


def test_event_from_graph_keeps_the_original_zone() -> None:
    item = event_from_graph(graph_event(body={"contentType": "html", "content": "<p>Fasting &amp; water</p>"}))
    assert item.etag == 'W/"ck1"' and item.event.tzid == "Europe/London"
    assert item.event.start == datetime(2030, 7, 1, 8, tzinfo=UTC)
    assert item.event.start.astimezone(LONDON).hour == 9
    assert item.event.description == "Fasting & water"


def test_event_to_graph_writes_local_time_with_windows_zone_and_marker() -> None:
    event = EventData(
        uid="u",
        summary="Physio",
        start=datetime(2030, 7, 1, 9, tzinfo=LONDON),
        end=datetime(2030, 7, 1, 10, tzinfo=LONDON),
        tzid="Europe/London",
        clinicbot_id="A-9",
    )
    body = event_to_graph(event)
    assert body["start"] == {"dateTime": "2030-07-01T09:00:00", "timeZone": "GMT Standard Time"}
    assert body["categories"] == ["clinicbot"] and body["showAs"] == "busy"
    assert body["singleValueExtendedProperties"] == [
        {"id": CLINICBOT_UID_PROPERTY_ID, "value": "u"},
        {"id": CLINICBOT_PROPERTY_ID, "value": "A-9"},
    ]
    assert event_to_graph(event, show_as_free=True)["showAs"] == "free"
    floating = event.with_changes(tzid="Antarctica/Troll")
    assert event_to_graph(floating)["start"] == {"dateTime": "2030-07-01T08:00:00", "timeZone": "UTC"}


def test_all_day_events_are_midnight_dates() -> None:
    event = EventData(
        uid="u",
        summary="Leave",
        start=datetime(2030, 7, 1, tzinfo=LONDON),
        end=datetime(2030, 7, 3, tzinfo=LONDON),
        tzid="Europe/London",
        all_day=True,
    )
    body = event_to_graph(event)
    assert body["isAllDay"] is True
    assert body["start"] == {"dateTime": "2030-07-01T00:00:00", "timeZone": "GMT Standard Time"}
    back = event_from_graph(
        graph_event(
            isAllDay=True,
            start={"dateTime": "2030-07-01T00:00:00.0000000", "timeZone": "UTC"},
            end={"dateTime": "2030-07-03T00:00:00.0000000", "timeZone": "UTC"},
        )
    )
    assert back.event.all_day and back.event.start == datetime(2030, 7, 1, tzinfo=LONDON)


@pytest.mark.parametrize(
    "rrule",
    [
        "FREQ=DAILY;INTERVAL=2;COUNT=5",
        "FREQ=WEEKLY;BYDAY=MO,WE,FR",
        "FREQ=MONTHLY;BYMONTHDAY=15",
        "FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2",
        "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=4",
        "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1",
    ],
)
def test_rrule_round_trips_through_patterned_recurrence(rrule: str) -> None:
    start = datetime(2030, 3, 4, 9, tzinfo=LONDON)
    pattern = rrule_to_pattern(rrule, start, LONDON, "GMT Standard Time")
    assert set(pattern_to_rrule(pattern, LONDON).split(";")) == set(rrule.split(";"))


def test_until_becomes_an_inclusive_end_date() -> None:
    start = datetime(2030, 3, 4, 9, tzinfo=LONDON)
    pattern = rrule_to_pattern("FREQ=WEEKLY;BYDAY=MO;UNTIL=20300401T080000Z", start, LONDON, "GMT Standard Time")
    assert pattern["range"] == {
        "type": "endDate",
        "startDate": "2030-03-04",
        "endDate": "2030-04-01",
        "recurrenceTimeZone": "GMT Standard Time",
    }


@pytest.mark.parametrize(
    "rrule",
    ["FREQ=HOURLY", "FREQ=DAILY;BYHOUR=9,17", "FREQ=MONTHLY;BYMONTHDAY=1,15", "FREQ=MONTHLY;BYDAY=1MO,2TU"],
)
def test_rules_outlook_cannot_hold_are_refused(rrule: str) -> None:
    with pytest.raises(Refused):
        rrule_to_pattern(rrule, datetime(2030, 3, 4, 9, tzinfo=LONDON), LONDON, "GMT Standard Time")


@pytest.mark.parametrize(
    "broken",
    [
        {"subject": "no id"},
        graph_event(start=None),
        graph_event(start={"dateTime": "yesterday", "timeZone": "UTC"}),
        graph_event(end={"dateTime": "2030-07-01T08:30:00", "timeZone": "Nowhere Standard Time"}),
        graph_event(end={"dateTime": "2030-07-01T07:00:00", "timeZone": "UTC"}),
    ],
)
def test_unreadable_events_are_bad_payload(broken: dict[str, object]) -> None:
    with pytest.raises(BadPayload):
        event_from_graph(broken)
