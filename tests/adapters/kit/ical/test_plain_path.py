"""The plain-event path (issue 23, session 28): one VCALENDAR with one simple VEVENT is read without
the component tree. It must give exactly what the full reader gives, and hand everything else
(series, dates, custom zones, repairs, problems) to the full reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.kit.ical import parse_events
from adapters.kit.ical.contentlines import parse_components
from adapters.kit.ical.reader import ReadProblem, _plain_event, _read

BERLIN_ZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
)
CUSTOM_ZONE = BERLIN_ZONE.replace("TZID:Europe/Berlin", "TZID:My Office Time")


def full(text: str, default_tz: str | None = None) -> tuple[list[object], list[ReadProblem]]:
    problems: list[ReadProblem] = []
    return _read(parse_components(text), default_tz, problems), problems  # type: ignore[return-value]


def calendar(*event_lines: str, zone: str = "", alarm: bool = False, newline: str = "\r\n") -> str:
    alarm_lines = ["BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT15M", "END:VALARM"] if alarm else []
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    body = newline.join(lines) + newline + zone.replace("\r\n", newline)
    return body + newline.join(["BEGIN:VEVENT", *event_lines, *alarm_lines, "END:VEVENT", "END:VCALENDAR"]) + newline


def stamp(moment: datetime, tzid: str | None) -> str:
    if tzid is None:
        return f":{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f";TZID={tzid}:{moment:%Y%m%dT%H%M%S}"


texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40).map(
    lambda t: t.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,"))


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    minutes=st.integers(0, 600),
    tzid=st.sampled_from([None, "Europe/Berlin", "America/New_York", "W. Europe Standard Time", "Nowhere/Unknown"]),
    extras=st.lists(st.sampled_from(["SUMMARY", "DESCRIPTION", "LOCATION", "X-CLINICBOT-CLIENT-NAME",
                                     "X-CLINICBOT-CLIENT-EMAIL", "X-CLINICBOT-SERVICE", "X-CLINICBOT-ID",
                                     "X-UNKNOWN", "ORGANIZER"]), unique=True),
    text=texts,
    status=st.sampled_from([None, "CONFIRMED", "tentative", "CANCELLED", "odd"]),
    transp=st.sampled_from([None, "OPAQUE", "TRANSPARENT"]),
    sequence=st.sampled_from([None, "0", "7"]),
    zone=st.booleans(), alarm=st.booleans(), fold=st.booleans(), crlf=st.booleans(),
    default_tz=st.sampled_from([None, "Europe/Berlin"]),
)
def test_the_plain_path_reads_what_the_full_reader_reads(
    start: datetime, minutes: int, tzid: str | None, extras: list[str], text: str, status: str | None,
    transp: str | None, sequence: str | None, zone: bool, alarm: bool, fold: bool, crlf: bool,
    default_tz: str | None,
) -> None:
    if tzid is None:
        start = start.replace(tzinfo=UTC)
    lines = ["UID:plain-1", "DTSTAMP:20260101T000000Z", "DTSTART" + stamp(start, tzid),
             "DTEND" + stamp(start + timedelta(minutes=minutes), tzid)]
    lines += [f"{name}:{text}" for name in extras]
    lines += [f"STATUS:{status}"] * (status is not None) + [f"TRANSP:{transp}"] * (transp is not None)
    lines += [f"SEQUENCE:{sequence}"] * (sequence is not None)
    if fold:
        lines = [line[:20] + "\r\n " + line[20:] if len(line) > 20 else line for line in lines]
    source = calendar(*lines, zone=BERLIN_ZONE if zone else "", alarm=alarm, newline="\r\n" if crlf else "\n")
    if not crlf:
        source = source.replace("\r\n ", "\n ")
    plain = _plain_event(source, default_tz)
    events, problems = full(source, default_tz)
    assert plain is not None or tzid == "W. Europe Standard Time" or problems or len(events) != 1
    if plain is not None:
        assert problems == []
        assert events == [plain]
        assert parse_events(source, default_tz=default_tz) == [plain]


UTC_START, UTC_END = "DTSTART:20270105T090000Z", "DTEND:20270105T100000Z"


@pytest.mark.parametrize("lines, zone", [
    (["UID:a", UTC_START, UTC_END, "RRULE:FREQ=WEEKLY;COUNT=3"], ""),
    (["UID:a", UTC_START, UTC_END, "EXDATE:20270112T090000Z"], ""),
    (["UID:a", UTC_START, UTC_END, "RDATE:20270112T090000Z"], ""),
    (["UID:a", UTC_START, UTC_END, "RECURRENCE-ID:20270105T090000Z"], ""),
    (["UID:a", UTC_START, "DURATION:PT1H"], ""),
    (["UID:a", UTC_START], ""),
    (["UID:a", UTC_START, UTC_END, "CATEGORIES:no_show"], ""),
    (["UID:a", "DTSTART;VALUE=DATE:20270105", "DTEND;VALUE=DATE:20270106"], ""),
    (["UID:a", "DTSTART:20270105", "DTEND:20270106"], ""),
    (["UID:a", "DTSTART:20270105T090000", "DTEND:20270105T100000"], ""),  # floating
    (["UID:a", "DTSTART;TZID=My Office Time:20270105T090000", "DTEND;TZID=My Office Time:20270105T100000"],
     CUSTOM_ZONE),
    (["UID:a", "DTSTART:20270105T100000Z", "DTEND:20270105T090000Z"], ""),  # reversed: repaired
    (["UID:a", UTC_START, UTC_END, "SEQUENCE:x"], ""),  # repaired
    (["UID:a", UTC_START, UTC_END, "SUMMARY:one", "SUMMARY:two"], ""),
    (["UID:a", UTC_START, UTC_END, "ATTENDEE;CN=\"Lee, Dr\":mailto:lee@example.org"], ""),
    (["UID:a", UTC_START, UTC_END, "BROKEN LINE"], ""),
    (["UID:", UTC_START, UTC_END], ""),  # no UID: a synthetic one
    (["UID:a", "DTSTART:20270105T095960Z", "DTEND:20270105T100000Z"], ""),  # leap second
])
def test_anything_unusual_goes_to_the_full_reader(lines: list[str], zone: str) -> None:
    source = calendar(*lines, zone=zone)
    assert _plain_event(source, None) is None
    events = full(source)[0]
    assert parse_events(source) == events


def test_two_events_or_another_component_go_to_the_full_reader() -> None:
    one = "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20270105T090000Z\r\nDTEND:20270105T100000Z\r\nEND:VEVENT\r\n"
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"
    for source in (head + one + one.replace("UID:a", "UID:b") + "END:VCALENDAR\r\n",
                   head + one + "BEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
                   head + one + "END:VCALENDAR\r\n" + head + one + "END:VCALENDAR\r\n",
                   head + one + "END:VCALENDAR\r\ntrailing text\r\n"):
        assert _plain_event(source, None) is None
        assert parse_events(source) == full(source)[0]


@pytest.mark.parametrize("lines, zone, alarm", [
    (["UID:bench-1", UTC_START, UTC_END, "DESCRIPTION:Follow-up\\, bring referral", "DTSTAMP:20261206T195440Z",
      "LOCATION:Room 1", "STATUS:CONFIRMED", "SUMMARY:Physio: Client 1", "TRANSP:OPAQUE"], "", False),
    (["UID:b", "DTSTART;TZID=Europe/Berlin:20270105T090000", "DTEND;TZID=Europe/Berlin:20270105T100000",
      "SUMMARY:Visit", "X-CLINICBOT-ID:42", "SEQUENCE:3"], BERLIN_ZONE, True),
])
def test_the_common_shapes_take_the_plain_path(lines: list[str], zone: str, alarm: bool) -> None:
    source = calendar(*lines, zone=zone, alarm=alarm)
    plain = _plain_event(source, None)
    assert plain is not None
    assert full(source) == ([plain], [])
    assert parse_events(source.encode()) == [plain]
