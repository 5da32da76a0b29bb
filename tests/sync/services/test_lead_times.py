"""Preferred times as written on forms, read with the chat's time words; what is not understood is kept."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from sync.services.lead_times import TimePreference, TimeWindow, parse_preferences

Z = ZoneInfo("Europe/Dublin")


@pytest.mark.parametrize(("written", "label"), [
    ("Tuesday afternoons", "Tue afternoon"),
    ("after 5pm", "after 17:00"),
    ("after 5", "after 17:00"),
    ("Tue or Thu afternoons", "Tue afternoon, Thu afternoon"),
    ("weekday mornings", "weekdays morning"),
    ("between 9 and 11am", "09:00-11:00"),
    ("Mondays before 10:30", "Mon before 10:30"),
    ("weekends", "weekends"),
    ("any time", "no preference"),
    ("when my kids are at school", "“when my kids are at school”"),
    ("Fridays, or whenever Dr Lee is in", "Fri, “whenever Dr Lee is in”"),
])
def test_written_preferences(written: str, label: str) -> None:
    assert parse_preferences([written]).label() == label


def test_a_slot_fits_any_window_and_text_narrows_nothing() -> None:
    pref = parse_preferences(["Tuesday afternoons", "after 5pm"])
    tue_2 = datetime(2031, 3, 4, 14, 0, tzinfo=Z)
    assert pref.fits(tue_2, tue_2.replace(hour=15))
    assert not pref.fits(tue_2.replace(hour=16, minute=30), tue_2.replace(hour=17, minute=30))  # ends after 17:00
    wed_5 = datetime(2031, 3, 5, 17, 0, tzinfo=Z)
    assert pref.fits(wed_5, wed_5.replace(hour=18))  # after 5pm, any day
    assert not pref.fits(wed_5.replace(hour=11), wed_5.replace(hour=12))
    vague = parse_preferences(["whenever suits"])
    assert vague.windows == () and vague.fits(wed_5, wed_5.replace(hour=18))
    assert TimePreference.from_json(pref.to_json()) == pref
    assert pref.windows[0] == TimeWindow((1,), time(12), time(17))
