"""Free/busy expansion of series whose rules would take seconds to forever (issue 21, item 1):
bounded work, and still the visits in the window where they can be known."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.kit.ical import expand, parse_events
from sync.contract.items import Window
from tests.sync.engine.test_series_budget import _finishes

DAY = Window(datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC))


def _series(rule: str, start: str = "19000101T090000") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART;TZID=Europe/Berlin:{start}\r\nDURATION:PT30M\r\nRRULE:{rule}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.mark.parametrize(
    ("rule", "visits"),
    [
        ("FREQ=HOURLY", 24),
        ("FREQ=MINUTELY;INTERVAL=30", 48),
        ("FREQ=DAILY;INTERVAL=0", 0),  # refused on reading: only its first visit, in 1900
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", 0),
        ("FREQ=SECONDLY;COUNT=2000000000", 0),  # 4 billion periods to walk: first visit only
    ],
)
def test_free_busy_of_heavy_rules_is_bounded(rule: str, visits: int) -> None:
    events = parse_events(_series(rule))
    found = _finishes(lambda: expand(events, DAY))
    assert len(found) == visits
    assert all(DAY.overlaps(e.start, e.end) for e in found)
