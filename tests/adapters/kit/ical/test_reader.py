"""Reading iCalendar into EventData: values, zones, recurrence, and errors that name the line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest

from adapters.kit.ical import parse_events
from adapters.kit.ical.reader import ReadProblem
from sync.contract import BadPayload

BERLIN = ZoneInfo("Europe/Berlin")


def cal(*lines: str) -> str:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", *lines, "END:VCALENDAR"]) + "\r\n"


def vevent(*lines: str, uid: str = "u1") -> list[str]:
    return ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"]


def test_plain_event_with_tzid_text_and_flags() -> None:
    (event,) = parse_events(
        cal(
            *vevent(
                "DTSTART;TZID=Europe/Berlin:20260330T093000",
                "DTEND;TZID=Europe/Berlin:20260330T101500",
                "SUMMARY:Check-up\\, Dr. Lee\\; room 2",
                "DESCRIPTION:line one\\nline two \\\\ end",
                "LOCATION:Clinic",
                "STATUS:TENTATIVE",
                "TRANSP:TRANSPARENT",
                "CATEGORIES:Physio,Follow\\,up",
                "CATEGORIES:Extra",
                "X-CLINICBOT-ID:A-1042",
            )
        )
    )
    assert event.uid == "u1"
    assert event.start == datetime(2026, 3, 30, 9, 30, tzinfo=BERLIN)
    assert event.start.utcoffset() == timedelta(hours=2)
    assert event.end - event.start == timedelta(minutes=45)
    assert event.tzid == "Europe/Berlin"
    assert event.summary == "Check-up, Dr. Lee; room 2"
    assert event.description == "line one\nline two \\ end"
    assert event.status == "tentative" and event.transparent
    assert event.categories == ("Physio", "Follow,up", "Extra")
    assert event.clinicbot_id == "A-1042"


def test_utc_floating_and_all_day_values() -> None:
    events = parse_events(
        cal(
            *vevent("DTSTART:20260105T080000Z", "DURATION:PT30M", uid="utc"),
            *vevent("DTSTART:20260105T080000", "DTEND:20260105T090000", uid="floating"),
            *vevent("DTSTART;VALUE=DATE:20260105", "DTEND;VALUE=DATE:20260107", uid="allday"),
            *vevent("DTSTART;VALUE=DATE:20260110", uid="oneday"),
        ),
        default_tz="America/New_York",
    )
    by_uid = {e.uid: e for e in events}
    assert by_uid["utc"].start == datetime(2026, 1, 5, 8, tzinfo=UTC) and by_uid["utc"].tzid is None
    assert by_uid["utc"].end == datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    floating = by_uid["floating"]
    assert floating.tzid == "America/New_York"
    assert floating.start == datetime(2026, 1, 5, 13, tzinfo=UTC)
    allday = by_uid["allday"]
    assert allday.all_day and allday.tzid == "America/New_York"
    assert allday.start == datetime(2026, 1, 5, tzinfo=ZoneInfo("America/New_York"))
    assert allday.end - allday.start == timedelta(days=2)
    assert by_uid["oneday"].end - by_uid["oneday"].start == timedelta(days=1)
    # Without a default zone, floating and all-day values are read as UTC.
    (plain,) = parse_events(cal(*vevent("DTSTART;VALUE=DATE:20260105")))
    assert plain.start == datetime(2026, 1, 5, tzinfo=UTC) and plain.tzid is None


def test_series_with_exdates_and_override() -> None:
    master, override = parse_events(
        cal(
            *vevent(
                "DTSTART;TZID=Europe/Berlin:20260316T080000",
                "DTEND;TZID=Europe/Berlin:20260316T090000",
                "RRULE:FREQ=WEEKLY;COUNT=4;BYDAY=MO",
                "EXDATE;TZID=Europe/Berlin:20260323T080000,20260406T080000",
                "SUMMARY:Series",
            ),
            *vevent(
                "RECURRENCE-ID;TZID=Europe/Berlin:20260330T080000",
                "DTSTART;TZID=Europe/Berlin:20260330T100000",
                "DTEND;TZID=Europe/Berlin:20260330T110000",
                "SUMMARY:Moved",
            ),
        )
    )
    assert master.rrule == "FREQ=WEEKLY;COUNT=4;BYDAY=MO"
    assert master.exdates == (
        datetime(2026, 3, 23, 8, tzinfo=BERLIN),
        datetime(2026, 4, 6, 8, tzinfo=BERLIN),
    )
    assert master.exdates[1].utcoffset() == timedelta(hours=2)  # after the DST change
    assert override.uid == master.uid
    assert override.recurrence_id == datetime(2026, 3, 30, 8, tzinfo=BERLIN)
    assert override.summary == "Moved" and override.rrule is None


@pytest.mark.parametrize(
    ("tzid", "expected"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ('"Eastern Standard Time"', "America/New_York"),
        ("/mozilla.org/20050126_1/Europe/Berlin", "Europe/Berlin"),
        (
            "/freeassociation.sourceforge.net/Tzfile/America/Argentina/Buenos_Aires",
            "America/Argentina/Buenos_Aires",
        ),
    ],
)
def test_windows_and_vendor_prefixed_zone_names(tzid: str, expected: str) -> None:
    (event,) = parse_events(cal(*vevent(f"DTSTART;TZID={tzid}:20260701T120000", f"DTEND;TZID={tzid}:20260701T130000")))
    assert event.tzid == expected
    assert event.start == datetime(2026, 7, 1, 12, tzinfo=ZoneInfo(expected))


CUSTOM_ZONE = [
    "BEGIN:VTIMEZONE",
    "TZID:Customized Time Zone",
    "BEGIN:STANDARD",
    "DTSTART:16010101T030000",
    "TZOFFSETFROM:+0200",
    "TZOFFSETTO:+0100",
    "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10",
    "END:STANDARD",
    "BEGIN:DAYLIGHT",
    "DTSTART:16010101T020000",
    "TZOFFSETFROM:+0100",
    "TZOFFSETTO:+0200",
    "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3",
    "END:DAYLIGHT",
    "END:VTIMEZONE",
]


def test_custom_vtimezone_resolves_to_the_iana_zone_with_the_same_rules() -> None:
    winter, summer = parse_events(
        cal(
            *CUSTOM_ZONE,
            *vevent('DTSTART;TZID="Customized Time Zone":20260115T090000', "DURATION:PT1H", uid="w"),
            *vevent('DTSTART;TZID="Customized Time Zone":20260715T090000', "DURATION:PT1H", uid="s"),
        )
    )
    assert winter.start == datetime(2026, 1, 15, 8, tzinfo=UTC)
    assert summer.start == datetime(2026, 7, 15, 7, tzinfo=UTC)
    # Kept as the IANA zone it equals, so its series expand in local time, not in UTC (issue 20, bug 1).
    assert winter.tzid is not None and winter.tzid.startswith("Europe/")
    assert ZoneInfo(winter.tzid).utcoffset(datetime(2026, 7, 15, 9)) == timedelta(hours=2)


def test_custom_vtimezone_that_no_iana_zone_equals_is_read_through_icalendar() -> None:
    odd = ["BEGIN:VTIMEZONE", "TZID:Odd", "BEGIN:STANDARD", "DTSTART:16010101T000000", "TZOFFSETFROM:+0317",
           "TZOFFSETTO:+0317", "END:STANDARD", "END:VTIMEZONE"]
    (event,) = parse_events(cal(*odd, *vevent("DTSTART;TZID=Odd:20260115T090000", "DURATION:PT1H")))
    assert event.start == datetime(2026, 1, 15, 5, 43, tzinfo=UTC)
    assert event.tzid is None  # no IANA name to keep


def test_custom_vtimezone_with_x_lic_location_keeps_the_iana_name() -> None:
    zone = [*CUSTOM_ZONE[:2], "X-LIC-LOCATION:Europe/Vienna", *CUSTOM_ZONE[2:]]
    (event,) = parse_events(cal(*zone, *vevent('DTSTART;TZID="Customized Time Zone":20260715T090000')))
    assert event.tzid == "Europe/Vienna"


def test_folded_lines_and_quoted_parameters() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:fold\r\n"
        "DTSTART:20260105T080000Z\r\nSUMMARY:A very long summ\r\n ary that was fol\r\n\tded\r\n"
        'LOCATION;ALTREP="http://example.org/a:b;c":Room 1\r\n'
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    (event,) = parse_events(text)
    assert event.summary == "A very long summary that was folded"
    assert event.location == "Room 1"


def test_missing_uid_gets_a_stable_synthetic_one() -> None:
    text = cal("BEGIN:VEVENT", "DTSTART:20260105T080000Z", "SUMMARY:x", "END:VEVENT")
    first, second = parse_events(text)[0], parse_events(text)[0]
    assert first.uid == second.uid and first.uid.startswith("nouid-")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("<html><body>Not found</body></html>\r\n", 1, "content line"),
        ("", 1, "no iCalendar data"),
        ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n", 3, "END:VCALENDAR"),
        ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", 1, "never ended"),
    ],
)
def test_input_that_is_not_icalendar_as_a_whole_names_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(BadPayload) as caught:
        parse_events(text)
    assert caught.value.line == line
    assert words in str(caught.value)
    assert f"line {line}" in str(caught.value)


@pytest.mark.parametrize(
    ("lines", "line", "kind", "words"),
    [
        (("SUMMARY:no start",), 4, "skipped", "VEVENT without DTSTART"),
        (("DTSTART:2026-01-05", "SUMMARY:x"), 7, "skipped", "DTSTART"),
        (("DTSTART:20260105T080000Z", "RRULE:FREQ=SOMETIMES"), 8, "rule", "RRULE"),
        (("DTSTART:20260105T080000Z", "DTEND:20260104T080000Z"), 8, "repaired", "swapped"),
        (("DTSTART:20260105T080000Z", "this line has no colon"), 8, "repaired", "content line"),
    ],
)
def test_one_malformed_event_is_skipped_or_repaired_and_named_the_rest_is_read(
    lines: tuple[str, ...], line: int, kind: str, words: str
) -> None:
    good = vevent("DTSTART:20260106T080000Z", "SUMMARY:fine", uid="good")
    problems: list[ReadProblem] = []
    events = parse_events(cal(*vevent(*lines), *good), problems=problems)
    assert "good" in [e.uid for e in events]
    assert [(p.kind, p.uid, p.line) for p in problems] == [(kind, "u1", line)]
    assert words in problems[0].what
    assert len(events) == (1 if kind == "skipped" else 2)


def test_agrees_with_the_icalendar_library() -> None:
    lines = []
    for n in range(40):
        zone = ("Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney")[n % 4]
        day = datetime(2026, 1, 1) + timedelta(days=9 * n, hours=n % 7)
        lines += vevent(
            f"DTSTART;TZID={zone}:{day:%Y%m%dT%H%M%S}",
            f"DTEND;TZID={zone}:{day + timedelta(minutes=30 + n):%Y%m%dT%H%M%S}",
            f"SUMMARY:Visit {n}\\, ok",
            uid=f"u{n}",
        )
    text = cal(*lines)
    ours = parse_events(text)
    theirs = icalendar.Calendar.from_ical(text).walk("VEVENT")
    assert len(ours) == len(theirs) == 40
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.uid == str(other["UID"])
        assert mine.start == other.decoded("DTSTART")
        assert mine.end == other.decoded("DTEND")
        assert mine.summary == str(other["SUMMARY"])


def test_category_ending_in_an_escaped_backslash_is_split_at_the_comma() -> None:
    (event,) = parse_events(cal(*vevent("DTSTART:20260105T080000Z", "CATEGORIES:a\\\\,b\\,c,d")))
    assert event.categories == ("a\\", "b,c", "d")
