"""The plain-event path (issue 23, session 28): one VCALENDAR with one simple VEVENT is read without
the component tree. It must give exactly what the full reader gives, and hand everything else
(series, dates, custom zones, repairs, problems) to the full reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.kit.ical import parse_events
from adapters.kit.ical.contentlines import Component, component_text, located, parse_components
from adapters.kit.ical.reader import ReadProblem, _plain_event, _read
from sync.contract import BadPayload

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
    lambda t: t.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
)


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    minutes=st.integers(0, 600),
    tzid=st.sampled_from([None, "Europe/Berlin", "America/New_York", "W. Europe Standard Time", "Nowhere/Unknown"]),
    extras=st.lists(
        st.sampled_from(
            [
                "SUMMARY",
                "DESCRIPTION",
                "LOCATION",
                "X-CLINICBOT-CLIENT-NAME",
                "X-CLINICBOT-CLIENT-EMAIL",
                "X-CLINICBOT-SERVICE",
                "X-CLINICBOT-ID",
                "X-UNKNOWN",
                "ORGANIZER",
            ]
        ),
        unique=True,
    ),
    text=texts,
    status=st.sampled_from([None, "CONFIRMED", "tentative", "CANCELLED", "odd"]),
    transp=st.sampled_from([None, "OPAQUE", "TRANSPARENT"]),
    sequence=st.sampled_from([None, "0", "7"]),
    zone=st.booleans(),
    alarm=st.booleans(),
    fold=st.booleans(),
    crlf=st.booleans(),
    default_tz=st.sampled_from([None, "Europe/Berlin"]),
)
def test_the_plain_path_reads_what_the_full_reader_reads(
    start: datetime,
    minutes: int,
    tzid: str | None,
    extras: list[str],
    text: str,
    status: str | None,
    transp: str | None,
    sequence: str | None,
    zone: bool,
    alarm: bool,
    fold: bool,
    crlf: bool,
    default_tz: str | None,
) -> None:
    if tzid is None:
        start = start.replace(tzinfo=UTC)
    lines = [
        "UID:plain-1",
        "DTSTAMP:20260101T000000Z",
        "DTSTART" + stamp(start, tzid),
        "DTEND" + stamp(start + timedelta(minutes=minutes), tzid),
    ]
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


@pytest.mark.parametrize(
    "lines, zone",
    [
        (["UID:a", UTC_START, UTC_END, "RRULE:FREQ=WEEKLY;COUNT=3"], ""),
        (["UID:a", UTC_START, UTC_END, "EXDATE:20270112T090000Z"], ""),
        (["UID:a", UTC_START, UTC_END, "RDATE:20270112T090000Z"], ""),
        (["UID:a", UTC_START, UTC_END, "RECURRENCE-ID:20270105T090000Z"], ""),
        (["UID:a", UTC_START, "DURATION:PT1H"], ""),
        (["UID:a", UTC_START], ""),
        (["UID:a", UTC_START, UTC_END, "CATEGORIES:no_show"], ""),
        (
            ["UID:a", "DTSTART;TZID=My Office Time:20270105T090000", "DTEND;TZID=My Office Time:20270105T100000"],
            CUSTOM_ZONE,
        ),
        (["UID:a", "DTSTART:20270105T100000Z", "DTEND:20270105T090000Z"], ""),  # reversed: repaired
        (["UID:a", UTC_START, UTC_END, "SEQUENCE:x"], ""),  # repaired
        (["UID:a", UTC_START, UTC_END, "SUMMARY:one", "SUMMARY:two"], ""),
        (["UID:a", UTC_START, UTC_END, "BROKEN LINE"], ""),
        (["UID:", UTC_START, UTC_END], ""),  # no UID: a synthetic one
        (["UID:a", "DTSTART:20270105T095960Z", "DTEND:20270105T100000Z"], ""),  # leap second
        (["UID:a", "DTSTART;VALUE=DATE:20270105", UTC_END], ""),  # a date and a date-time: repaired
        (["UID:a", "DTSTART;VALUE=DATE-TIME:20270105T090000Z", UTC_END], ""),
        (["UID:a", "DTSTART;TZID=Europe/Berlin:20270105T090000Z", UTC_END], ""),  # TZID on a UTC time
        (["UID:a", "DTSTART;TZID=Europe/Berlin;VALUE=DATE-TIME:20270105T090000", UTC_END], ""),
        (["UID:a", "DTSTART;VALUE=PERIOD:20270105T090000Z", UTC_END], ""),  # skipped by the full reader
        (["UID:a", "DTSTART:20270105T090000Z ", UTC_END], ""),  # trailing space
        (["UID:a", UTC_START, UTC_END, 'ATTENDEE;CN="Lee"x:mailto:lee@example.org'], ""),  # bad quoting
        (["UID:a", UTC_START, UTC_END, "ATTENDEE;RSVP:mailto:lee@example.org"], ""),  # parameter without '='
    ],
)
def test_anything_unusual_goes_to_the_full_reader(lines: list[str], zone: str) -> None:
    source = calendar(*lines, zone=zone)
    assert _plain_event(source, None) is None
    events = full(source)[0]
    assert parse_events(source) == events


def test_two_events_or_another_component_go_to_the_full_reader() -> None:
    one = "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20270105T090000Z\r\nDTEND:20270105T100000Z\r\nEND:VEVENT\r\n"
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"
    for source in (
        head + one + one.replace("UID:a", "UID:b") + "END:VCALENDAR\r\n",
        head + one + "BEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
        head + one + "END:VCALENDAR\r\n" + head + one + "END:VCALENDAR\r\n",
        head + one + "END:VCALENDAR\r\ntrailing text\r\n",
    ):
        assert _plain_event(source, None) is None
        assert parse_events(source) == full(source)[0]


@pytest.mark.parametrize(
    "lines, zone, alarm",
    [
        (["UID:a", "DTSTART;VALUE=DATE:20270105", "DTEND;VALUE=DATE:20270106", "SUMMARY:Away"], "", False),
        (["UID:a", "DTSTART:20270105", "DTEND:20270107"], "", False),  # all-day without VALUE=DATE
        (["UID:a", "DTSTART;value=date:20270105", "DTEND;VALUE=Date:20270106"], "", False),
        (["UID:a", "DTSTART:20270105T090000", "DTEND:20270105T100000"], "", False),  # floating
        (
            [
                "UID:a",
                UTC_START,
                UTC_END,
                'ATTENDEE;CN="Lee, Dr";PARTSTAT=ACCEPTED:mailto:lee@example.org',
                'ORGANIZER;CN="Front desk: Room 1":mailto:desk@example.org',
            ],
            "",
            True,
        ),
        (
            ["UID:a", 'DTSTART;TZID="Europe/Berlin":20270105T090000', "DTEND;tzid=Europe/Berlin:20270105T100000"],
            BERLIN_ZONE,
            False,
        ),
        (
            [
                "UID:bench-1",
                UTC_START,
                UTC_END,
                "DESCRIPTION:Follow-up\\, bring referral",
                "DTSTAMP:20261206T195440Z",
                "LOCATION:Room 1",
                "STATUS:CONFIRMED",
                "SUMMARY:Physio: Client 1",
                "TRANSP:OPAQUE",
            ],
            "",
            False,
        ),
        (
            [
                "UID:b",
                "DTSTART;TZID=Europe/Berlin:20270105T090000",
                "DTEND;TZID=Europe/Berlin:20270105T100000",
                "SUMMARY:Visit",
                "X-CLINICBOT-ID:42",
                "SEQUENCE:3",
            ],
            BERLIN_ZONE,
            True,
        ),
    ],
)
def test_the_common_shapes_take_the_plain_path(lines: list[str], zone: str, alarm: bool) -> None:
    source = calendar(*lines, zone=zone, alarm=alarm)
    plain = _plain_event(source, None)
    assert plain is not None
    assert full(source) == ([plain], [])
    assert parse_events(source.encode()) == [plain]


def _resources(path: Path) -> list[str]:
    """A calendar file as the CalDAV resources a server would hold: one VCALENDAR per UID (its
    VTIMEZONEs repeated in each), as Radicale stores a calendar that was PUT whole."""
    source = path.read_text(encoding="utf-8")
    calendars = parse_components(source)
    out = [source]
    for cal in calendars:
        zones = [child for child in cal.children if child.name != "VEVENT"]
        by_uid: dict[str, list[Component]] = {}
        for child in cal.children:
            if child.name == "VEVENT":
                uid = child.first("UID")
                by_uid.setdefault(uid.value if uid else "", []).append(child)
        for group in by_uid.values():
            head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
            body = "".join(component_text(c) for c in (*zones, *group))
            out.append(head + body + "END:VCALENDAR\r\n")
    return out


FIXTURES = sorted(
    [
        *Path(__file__).parent.joinpath("probes").glob("*.ics"),
        *Path(__file__).parents[2].joinpath("ics", "fixtures").glob("*.ics"),
    ]
)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("default_tz", [None, "Europe/Berlin"])
def test_the_fixtures_read_alike_on_both_paths(path: Path, default_tz: str | None) -> None:
    """Each fixture, whole and split into one resource per UID: `parse_events` (the plain path
    where it applies) gives exactly the events and problems of the full reader."""
    assert FIXTURES
    for source in _resources(path):
        expected, expected_problems = located_full(source, default_tz)
        problems: list[ReadProblem] = []
        assert parse_events(source, default_tz=default_tz, problems=problems) == expected
        assert problems == expected_problems
        plain = _plain_event(source, default_tz)
        if plain is not None:
            assert expected == [plain] and expected_problems == []


def located_full(source: str, default_tz: str | None) -> tuple[list[object], list[ReadProblem]]:
    """The full reader alone, as `parse_events` runs it without the plain path."""
    events, problems = full(source, default_tz)
    if any(p.line == 0 for p in problems):
        problems = []
        events = _read(located(source, tolerant=True), default_tz, problems)  # type: ignore[assignment]
    return events, problems


_PARAMS = st.sampled_from(
    [
        "",
        ";CN=Lee",
        ';CN="Lee, Dr"',
        ";ROLE=REQ-PARTICIPANT;RSVP=TRUE",
        ';CN="a:b;c"',
        ";X-BAD",
        ';CN="open',
        ';CN="x"y',
        ";=v",
    ]
)
_EXTRA_LINES = st.sampled_from(
    [
        "RRULE:FREQ=WEEKLY;COUNT=4",
        "RRULE:FREQ=DAILY;INTERVAL=0",
        "EXDATE:20270112T090000Z",
        "EXDATE;VALUE=DATE:20270112",
        "EXDATE;TZID=Europe/Berlin:20270112T100000",
        "RDATE:20270120T090000Z",
        "RECURRENCE-ID:20270105T090000Z",
        "CATEGORIES:a\\,b,c",
        "DURATION:PT1H",
        "SEQUENCE:2",
        "SEQUENCE:x",
        "STATUS:CANCELLED",
        "TRANSP:TRANSPARENT",
        "X-CLINICBOT-ID: 42 ",
        "CLASS:PRIVATE",
        "URL:https://example.org/a",
        "garbage without a colon",
        " continuation with nothing before it",
        "DTSTAMP:20260101T000000Z",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    minutes=st.integers(-60, 2000),
    kind=st.sampled_from(["utc", "tzid", "floating", "date", "date-value", "mixed"]),
    tzid=st.sampled_from(["Europe/Berlin", "America/New_York", "W. Europe Standard Time", "Nowhere/Unknown"]),
    attendees=st.lists(_PARAMS, max_size=3),
    extras=st.lists(_EXTRA_LINES, max_size=4),
    text=texts,
    fold_at=st.sampled_from([None, 1, 7, 30, 75]),
    zone=st.booleans(),
    alarm=st.booleans(),
    crlf=st.booleans(),
    default_tz=st.sampled_from([None, "Europe/Berlin", "UTC"]),
)
def test_generated_events_read_alike_on_both_paths(
    start: datetime,
    minutes: int,
    kind: str,
    tzid: str,
    attendees: list[str],
    extras: list[str],
    text: str,
    fold_at: int | None,
    zone: bool,
    alarm: bool,
    crlf: bool,
    default_tz: str | None,
) -> None:
    """Folded lines, escapes, TZIDs, all-day and floating times, series and their exceptions,
    attendees with quoted parameters, garbage lines: whatever the plain path accepts, it reads as
    the full reader does, and `parse_events` gives the full reader's events and problems."""
    end = start + timedelta(minutes=minutes)

    def stamp_of(moment: datetime, which: str) -> str:
        if kind == "utc":
            return f":{moment:%Y%m%dT%H%M%S}Z"
        if kind == "tzid":
            return f";TZID={tzid}:{moment:%Y%m%dT%H%M%S}"
        if kind == "floating":
            return f":{moment:%Y%m%dT%H%M%S}"
        if kind == "date":
            return f":{moment:%Y%m%d}"
        if kind == "date-value" or which == "DTSTART":
            return f";VALUE=DATE:{moment:%Y%m%d}"
        return f":{moment:%Y%m%dT%H%M%S}Z"  # "mixed": an all-day start with a timed end

    lines = [
        "UID:gen-1",
        f"SUMMARY:{text}",
        f"DESCRIPTION:{text}\\n{text}",
        "DTSTART" + stamp_of(start, "DTSTART"),
        "DTEND" + stamp_of(end, "DTEND"),
    ]
    lines += [f"ATTENDEE{params}:mailto:p{n}@example.org" for n, params in enumerate(attendees)]
    lines += extras
    if fold_at is not None:
        lines = [line[:fold_at] + "\r\n " + line[fold_at:] if len(line) > fold_at else line for line in lines]
    newline = "\r\n" if crlf else "\n"
    source = calendar(*lines, zone=BERLIN_ZONE if zone else "", alarm=alarm, newline=newline)
    if not crlf:
        source = source.replace("\r\n ", "\n ")
    try:
        expected, expected_problems = located_full(source, default_tz)
    except BadPayload as exc:  # not iCalendar at all: both paths refuse it, naming the line
        assert _plain_event(source, default_tz) is None
        with pytest.raises(BadPayload, match=r"^line \d+: ") as raised:
            parse_events(source, default_tz=default_tz)
        assert str(raised.value) == str(exc)
        return
    plain = _plain_event(source, default_tz)
    if plain is not None:
        assert expected_problems == []
        assert expected == [plain]
    problems: list[ReadProblem] = []
    assert parse_events(source, default_tz=default_tz, problems=problems) == expected
    assert problems == expected_problems


@pytest.mark.parametrize(
    "source, message",
    [
        ("hello\r\n", "line 1: not an iCalendar content line"),
        ("BEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\n", "line 1: expected BEGIN:VCALENDAR, got BEGIN:VEVENT"),
        (
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20270105T090000Z\r\n",
            "line 5: VEVENT begun on line 2 is never ended",
        ),
        ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n", "line 3: END:VCALENDAR does not close VEVENT"),
        ("", "line 1: no iCalendar data (expected BEGIN:VCALENDAR)"),
    ],
)
def test_garbage_is_refused_with_a_clear_error(source: str, message: str) -> None:
    assert _plain_event(source, None) is None
    with pytest.raises(BadPayload) as raised:
        parse_events(source)
    assert str(raised.value) == message
