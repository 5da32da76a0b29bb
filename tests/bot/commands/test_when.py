"""The `<when>` parser: what people type, read in the practice's zone, DST edges included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands.errors import ParseError
from bot.commands.when import parse_day, parse_when

LONDON = "Europe/London"
# Tuesday 3 March 2026, 10:00 in London (UTC+0 then).
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
APPT = datetime(2026, 3, 5, 9, 30, tzinfo=ZoneInfo(LONDON))


def when(text: str, now: datetime = NOW, tz: str = LONDON, keep: datetime | None = APPT) -> datetime:
    return parse_when(text).resolve(now, tz, keep)


def local(y: int, m: int, d: int, hh: int, mm: int = 0, tz: str = LONDON) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ZoneInfo(tz))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tomorrow 3pm", local(2026, 3, 4, 15)),
        ("3pm tomorrow", local(2026, 3, 4, 15)),
        ("tomorrow at 3:30 pm", local(2026, 3, 4, 15, 30)),
        ("Tue 14:30", local(2026, 3, 3, 14, 30)),  # today is Tuesday and 14:30 is still ahead
        ("Tue 09:00", local(2026, 3, 10, 9)),  # today's 09:00 has passed: next Tuesday
        ("next tue 14:30", local(2026, 3, 10, 14, 30)),
        ("wednesday noon", local(2026, 3, 4, 12)),
        ("fri 12am", local(2026, 3, 6, 0)),
        ("fri 12pm", local(2026, 3, 6, 12)),
        ("4 Mar 10:15", local(2026, 3, 4, 10, 15)),
        ("March 4th 10.15", local(2026, 3, 4, 10, 15)),
        ("1 Mar 10:00", local(2027, 3, 1, 10)),  # a day without a year that has passed means next year
        ("2026-03-09 08:45", local(2026, 3, 9, 8, 45)),
        ("2026-03-09T08:45", local(2026, 3, 9, 8, 45)),
        ("2026-03-09T8:45", local(2026, 3, 9, 8, 45)),
        ("14h30", local(2026, 3, 5, 14, 30)),  # only a time: keeps the appointment's day
        ("tomorrow", local(2026, 3, 4, 9, 30)),  # only a day: keeps the appointment's time
    ],
)
def test_reads_what_people_type(text: str, expected: datetime) -> None:
    assert when(text) == expected


def test_iso_with_offset_is_that_instant_shown_in_the_practice_zone() -> None:
    got = when("2026-07-01T14:30+02:00")
    assert got == datetime(2026, 7, 1, 12, 30, tzinfo=UTC)
    assert got.utcoffset() == timedelta(hours=1)  # London summer time
    assert when("2026-07-01T12:30Z") == got


def test_same_text_means_the_same_wall_time_in_each_practice_zone() -> None:
    assert when("tomorrow 3pm", tz="America/New_York").hour == 15
    assert when("tomorrow 3pm", tz="Asia/Tokyo") == local(2026, 3, 4, 15, tz="Asia/Tokyo")


def test_today_is_the_practice_days_today_not_the_servers() -> None:
    late = datetime(2026, 3, 3, 23, 30, tzinfo=UTC)  # already Wednesday in Tokyo
    assert when("today 10:00", now=late, tz="Asia/Tokyo").date() == date(2026, 3, 4)


def test_spring_forward_gap_is_refused() -> None:
    # Clocks in London go from 01:00 to 02:00 on 29 March 2026.
    with pytest.raises(ParseError, match="does not exist"):
        when("2026-03-29 01:30")
    with pytest.raises(ParseError, match="clocks go forward"):
        when("29 Mar 1:30am")


def test_fall_back_repeated_hour_means_the_first() -> None:
    got = when("2026-10-25 01:30")
    assert got.utcoffset() == timedelta(hours=1)
    assert got.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "say when"),
        ("13pm", "1 to 12"),
        ("0am", "1 to 12"),
        ("25:00", "00:00 to 23:59"),
        ("12:75", "00:00 to 23:59"),
        ("3:75pm", "minutes"),
        ("tomorrow 3", "ambiguous"),
        ("blursday 3pm", "couldn't read 'blursday'"),
        ("tomorrow friday 3pm", "two days"),
        ("3pm 4pm", "two times"),
        ("31 Feb 10:00", "no 31 Feb"),
        ("2026-02-30", "not a real date"),
        ("2026-13-01T10:00", "not a real date"),
    ],
)
def test_malformed_input_says_what_was_wrong_with_an_example(text: str, needle: str) -> None:
    with pytest.raises(ParseError) as info:
        when(text)
    assert needle in info.value.message
    assert info.value.example


def test_day_without_time_and_nothing_to_keep_is_refused() -> None:
    with pytest.raises(ParseError, match="no time"):
        when("tomorrow", keep=None)


def test_29_feb_without_a_year_is_the_next_leap_day() -> None:
    assert when("29 Feb 10:00") == local(2028, 2, 29, 10)
    with pytest.raises(ParseError, match="no 29 Feb"):
        when("29 Feb 2027 10:00")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", date(2026, 3, 3)),
        ("tomorrow", date(2026, 3, 4)),
        ("yesterday", date(2026, 3, 2)),
        ("tue", date(2026, 3, 3)),
        ("next tue", date(2026, 3, 10)),
        ("sunday", date(2026, 3, 8)),
        ("2026-04-01", date(2026, 4, 1)),
        ("4 apr", date(2026, 4, 4)),
    ],
)
def test_agenda_days(text: str, expected: date) -> None:
    assert parse_day(text).resolve(date(2026, 3, 3)) == expected


def test_agenda_day_refuses_trailing_words() -> None:
    with pytest.raises(ParseError, match="after the day"):
        parse_day("today please")


zones = st.sampled_from(["Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"])


@settings(max_examples=60, deadline=None)
@given(zone=zones, offset_minutes=st.integers(0, 60 * 24 * 300).map(lambda m: m - m % 5))
def test_iso_and_spoken_forms_agree_on_every_wall_time(zone: str, offset_minutes: int) -> None:
    target = (NOW + timedelta(minutes=offset_minutes)).astimezone(ZoneInfo(zone))
    wall = target.replace(tzinfo=None)
    spoken = f"{wall.day} {wall:%b %Y} {wall:%H:%M}"
    iso = f"{wall:%Y-%m-%d %H:%M}"
    try:
        a = when(iso, tz=zone)
    except ParseError:
        return  # a time skipped by DST: both must refuse
    assert a.replace(tzinfo=None) == wall
    assert when(spoken, tz=zone) == a
