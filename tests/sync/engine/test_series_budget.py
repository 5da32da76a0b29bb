"""Series whose rules would make dateutil loop for seconds or for ever: each expansion does a bounded
amount of work, whatever the rule says (issue 21, item 1)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sync.engine.series import expand
from sync.store.model import Appointment

BERLIN = ZoneInfo("Europe/Berlin")
#: Liveness bound, not a timing assertion: before the fix these calls never returned (or took
#: minutes); a bounded expansion returns in milliseconds, so 60 s only tells "hangs" from "returns".
HANG = 60.0


def _finishes(call: Callable[[], Any]) -> Any:
    """Run `call` in a daemon thread and return its result; fail the test if it never returns."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # handed back to the test
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG)
    if worker.is_alive():
        pytest.fail("the expansion did not return: its work is not bounded")
    if "error" in box:
        raise box["error"]
    return box["result"]


def _series(start: datetime, rrule: str, minutes: int = 30) -> Appointment:
    return Appointment(id=11, practice_id=1, start=start, end=start + timedelta(minutes=minutes), tzid="Europe/Berlin",
                       rrule=rrule, exdates=[], recurrence_key="", status="confirmed", version=1)  # fmt: skip


def _day(d: date) -> tuple[datetime, datetime]:
    start = datetime(d.year, d.month, d.day, tzinfo=BERLIN)
    return start, start + timedelta(days=1)


def test_interval_zero_is_refused_and_shows_only_the_first_visit() -> None:
    first = datetime(2026, 3, 3, 9, 0, tzinfo=BERLIN)
    series = _series(first, "FREQ=DAILY;INTERVAL=0")
    assert _finishes(lambda: expand(series, *_day(date(2026, 3, 3)))) == [(first, first + timedelta(minutes=30))]
    assert _finishes(lambda: expand(series, *_day(date(2026, 3, 4)))) == []


@pytest.mark.parametrize(
    "rrule",
    [
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",  # a date that never comes
        "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=4,6,9,11",
        "FREQ=SECONDLY;COUNT=2000000000",
        "FREQ=MINUTELY;COUNT=2000000000;BYHOUR=3",
        "FREQ=HOURLY",
        "FREQ=SECONDLY",
    ],
)
def test_rules_that_take_seconds_to_forever_are_bounded(rrule: str) -> None:
    series = _series(datetime(1900, 1, 1, 9, 0, tzinfo=BERLIN), rrule)
    found = _finishes(lambda: expand(series, *_day(date(2026, 3, 3))))
    assert isinstance(found, list)


def test_an_hourly_series_since_1900_still_shows_todays_visits() -> None:
    series = _series(datetime(1900, 1, 1, 9, 0, tzinfo=BERLIN), "FREQ=HOURLY;INTERVAL=2")
    found = _finishes(lambda: expand(series, *_day(date(2026, 3, 3))))
    assert [s.astimezone(BERLIN).hour for s, _ in found] == list(range(1, 24, 2))


def test_series_at_the_same_instant_in_two_zones_keep_their_own_wall_clock() -> None:
    # The kept reading of a rule must not mix them up: 15:00 UTC weekly stays 15:00 UTC in summer,
    # 16:00 Berlin weekly stays 16:00 Berlin (14:00 UTC).
    first = datetime(2026, 1, 1, 15, 0, tzinfo=ZoneInfo("UTC"))
    berlin = _series(first.astimezone(BERLIN), "FREQ=WEEKLY")
    utc = _series(first, "FREQ=WEEKLY")
    utc.tzid = None
    summer = (datetime(2026, 7, 2, tzinfo=BERLIN), datetime(2026, 7, 3, tzinfo=BERLIN))
    [(in_berlin, _)] = expand(berlin, *summer, skip_ahead=False)
    [(in_utc, _)] = expand(utc, *summer, skip_ahead=False)
    assert in_berlin.astimezone(BERLIN).hour == 16 and in_utc.astimezone(ZoneInfo("UTC")).hour == 15
