"""Series expansion with recurring-ical-events: EXDATE, overrides, DST, windows."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from adapters.kit.ical import expand
from sync.contract.items import EventData, Window

BERLIN = ZoneInfo("Europe/Berlin")


def at(day: int, month: int = 3, hour: int = 8) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=BERLIN)


def test_weekly_series_across_dst_with_exdate_and_override() -> None:
    master = EventData(
        uid="s",
        summary="Series",
        start=at(16),
        end=at(16, hour=9),
        tzid="Europe/Berlin",
        rrule="FREQ=WEEKLY;COUNT=5",
        exdates=(at(23),),
        clinicbot_id="A-1",
    )
    moved = EventData(
        uid="s",
        summary="Moved",
        start=at(30, hour=10),
        end=at(30, hour=11),
        tzid="Europe/Berlin",
        recurrence_id=at(30),
    )
    single = EventData(uid="x", summary="Single", start=at(17), end=at(17, hour=9), tzid="Europe/Berlin")
    outside = EventData(uid="y", summary="Later", start=at(1, month=9), end=at(1, month=9, hour=9))
    window = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 30, tzinfo=UTC))
    occurrences = expand([master, moved, single, outside], window)
    assert [(o.uid, o.summary, o.start) for o in occurrences] == [
        ("s", "Series", at(16)),
        ("x", "Single", at(17)),
        ("s", "Moved", at(30, hour=10)),
        ("s", "Series", at(6, month=4)),
        ("s", "Series", at(13, month=4)),
    ]
    series = [o for o in occurrences if o.uid == "s"]
    assert all(o.rrule is None and o.exdates == () for o in series)
    assert [o.recurrence_id for o in series] == [at(16), at(30), at(6, month=4), at(13, month=4)]
    assert {o.start.astimezone(BERLIN).time() for o in series if o.summary == "Series"} == {time(8)}
    assert series[0].clinicbot_id == "A-1"


def test_window_cuts_an_endless_series() -> None:
    daily = EventData(
        uid="d", summary="Daily", start=at(1), end=at(1, hour=9), tzid="Europe/Berlin", rrule="FREQ=DAILY"
    )
    window = Window(datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC) + timedelta(days=3))
    assert [o.start.day for o in expand([daily], window)] == [10, 11, 12]


def test_all_day_series_stays_all_day() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    weekly = EventData(
        uid="a",
        summary="Closed",
        start=start,
        end=start + timedelta(days=1),
        all_day=True,
        rrule="FREQ=WEEKLY;COUNT=3",
    )
    window = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    occurrences = expand([weekly], window)
    assert [o.start for o in occurrences] == [start + timedelta(weeks=n) for n in range(3)]
    assert all(o.all_day and o.end - o.start == timedelta(days=1) for o in occurrences)
