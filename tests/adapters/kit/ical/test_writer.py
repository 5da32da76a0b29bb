"""Writing EventData as iCalendar: round trips, VTIMEZONE blocks, folding, and the zone table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.kit.ical import parse_events, serialize_calendar, serialize_event
from adapters.kit.ical.windows_zones import WINDOWS_TO_IANA
from adapters.kit.ical.writer import fold
from adapters.kit.ical.zones import vtimezone_lines
from sync.contract.items import EventData

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "Europe/London", None]

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(["\n", "\r", ",", ";", "\\", ":", '"']),
    max_size=120,
)


@st.composite
def events(draw: st.DrawFn) -> EventData:
    zone = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone) if zone else UTC
    all_day = draw(st.booleans())
    day = datetime(2026, 1, 1) + timedelta(days=draw(st.integers(0, 700)))
    if all_day:
        start = day.replace(tzinfo=tz)
        end = start + timedelta(days=draw(st.integers(1, 5)))
    else:
        start = (day + timedelta(minutes=15 * draw(st.integers(0, 95)))).replace(tzinfo=tz)
        end = start + timedelta(minutes=15 * draw(st.integers(0, 40)))
    rrule = draw(st.sampled_from([None, "FREQ=WEEKLY;COUNT=6", "FREQ=DAILY;INTERVAL=2;UNTIL=20291231T000000Z"]))
    exdates: tuple[datetime, ...] = ()
    if rrule and not all_day:
        exdates = (start + timedelta(weeks=1),)
    return EventData(
        uid=draw(st.from_regex(r"[A-Za-z0-9@._-]{1,40}", fullmatch=True)),
        summary=draw(text),
        description=draw(text),
        location=draw(text),
        start=start,
        end=end,
        tzid=zone,
        all_day=all_day,
        status=draw(st.sampled_from(["confirmed", "tentative", "cancelled"])),
        transparent=draw(st.booleans()),
        rrule=rrule,
        exdates=exdates,
        categories=tuple(c for c in draw(st.lists(text, max_size=3)) if c),
        clinicbot_id=draw(st.one_of(st.none(), st.from_regex(r"A-[0-9]{1,6}", fullmatch=True))),
        client_name=draw(st.one_of(st.none(), text)),
        service=draw(st.one_of(st.none(), text)),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(events(), min_size=1, max_size=4, unique_by=lambda e: e.uid))  # one UID is one event
def test_serialize_then_parse_is_the_identity(batch: list[EventData]) -> None:
    back = parse_events(serialize_calendar(batch), default_tz=None)
    for original, read in zip(batch, back, strict=True):
        expected = original
        if original.all_day and original.tzid:
            # A DATE has no zone: it comes back in the reader's default zone (UTC here).
            expected = original.with_changes(
                tzid=None,
                start=original.start.replace(tzinfo=UTC),
                end=original.end.replace(tzinfo=UTC),
            )
        for name in ("description", "location", "summary", "client_name", "service"):
            value = getattr(expected, name)
            if value is not None:
                expected = expected.with_changes(**{name: _newlines(value)})
        expected = expected.with_changes(categories=tuple(_newlines(c) for c in expected.categories))
        assert read == expected


def _newlines(value: str) -> str:
    """Text comes back with every line break as a plain newline."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


@settings(max_examples=40, deadline=None)
@given(events())
def test_icalendar_reads_what_we_write(event: EventData) -> None:
    parsed = icalendar.Calendar.from_ical(serialize_event(event))
    (component,) = parsed.walk("VEVENT")
    assert str(component["UID"]) == event.uid
    start = component.decoded("DTSTART")
    if event.all_day:
        assert start == event.start.date()
    else:
        assert start == event.start


def test_fold_keeps_lines_short_and_utf8_whole() -> None:
    line = "SUMMARY:" + "Zahnärztin Müller – Kontrolle " * 10
    folded = fold(line)
    for part in folded.split("\r\n"):
        assert len(part.encode()) <= 75
    assert folded.replace("\r\n ", "") == line


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"])
def test_generated_vtimezone_matches_the_iana_rules(zone: str) -> None:
    block = "\r\n".join(vtimezone_lines(zone, 2026)) + "\r\n"
    tz = icalendar.Timezone.from_ical(block).to_tz()
    iana = ZoneInfo(zone)
    for day in range(0, 365, 5):
        for hour in (1, 12):
            local = datetime(2026, 1, 1, hour) + timedelta(days=day)
            assert local.replace(tzinfo=tz).utcoffset() == local.replace(tzinfo=iana).utcoffset(), local


def test_windows_zone_table_names_real_iana_zones() -> None:
    known = available_timezones()
    assert WINDOWS_TO_IANA["W. Europe Standard Time"] == "Europe/Berlin"
    assert not [iana for iana in WINDOWS_TO_IANA.values() if iana not in known]
