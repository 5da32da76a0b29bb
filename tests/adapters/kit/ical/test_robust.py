"""One bad event never blocks a feed (issue 20, bug 8; issue 21, item 6): every event that can be
read is read, what has one obvious meaning is repaired, the rest is skipped and named by UID and line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from adapters.ics.feed import parse_feed
from adapters.kit.ical import parse_events
from adapters.kit.ical.reader import ReadProblem
from sync.contract import BadPayload

PROBES = Path(__file__).parent / "probes"
BERLIN = ZoneInfo("Europe/Berlin")


def cal(*lines: str, tail: str = "") -> str:
    body = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", *lines, "END:VCALENDAR"]
    return "\r\n".join(body) + "\r\n" + tail


def vevent(uid: str, *lines: str, start: str = "DTSTART;TZID=Europe/Berlin:20260105T090000",
           end: str = "DTEND;TZID=Europe/Berlin:20260105T100000") -> list[str]:
    return ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", start, end, *lines, "SUMMARY:Visit", "END:VEVENT"]


def read(text: str) -> tuple[dict[str, object], list[ReadProblem]]:
    problems: list[ReadProblem] = []
    events = parse_events(text, problems=problems)
    return {e.uid: e for e in events}, problems


def test_the_probe_with_one_reversed_event_in_200_reads_all_of_them() -> None:
    problems: list[ReadProblem] = []
    events, _, _ = parse_feed((PROBES / "p6_one_bad_event_in_200.ics").read_bytes(), problems=problems)
    assert len(events) == 200
    [fixed] = [e for e in events if e.uid == "probe-feed-117"]
    assert (fixed.start, fixed.end) == (datetime(2026, 5, 6, 8, 45, tzinfo=BERLIN), datetime(2026, 5, 6, 9, tzinfo=BERLIN))
    [problem] = problems
    assert (problem.kind, problem.uid) == ("repaired", "probe-feed-117")
    text = (PROBES / "p6_one_bad_event_in_200.ics").read_text().splitlines()
    assert text[problem.line - 1].startswith("DTEND") and "swapped" in problem.what


@pytest.mark.parametrize(
    ("name", "broken", "kind"),
    [
        ("Google: an empty DATE EXDATE", vevent("bad", "RRULE:FREQ=DAILY;COUNT=3", "EXDATE;VALUE=DATE:"), "repaired"),
        ("Confluence: a folded line that lost its space", [*vevent("bad", "DESCRIPTION:first half")[:-1],
                                                           "second half of the description", "END:VEVENT"], "repaired"),
        ("Apple: a property with no colon", vevent("bad", "X-APPLE-STRUCTURED-LOCATION"), "repaired"),
        ("Sixt: ORGANIZER with no value", vevent("bad", "ORGANIZER;CN=Rental desk"), "repaired"),
        ("Exchange: BYDAY with spaces", vevent("bad", "RRULE:FREQ=WEEKLY;COUNT=4;BYDAY=MO, TU"), "repaired"),
        ("a DATE DTSTART with a DATE-TIME DTEND", vevent("bad", start="DTSTART;VALUE=DATE:20260105",
                                                         end="DTEND:20260106T000000Z"), "repaired"),
        ("Nextcloud: end before start", vevent("bad", end="DTEND;TZID=Europe/Berlin:20260105T080000"), "repaired"),
        ("an unreadable DTSTART", vevent("bad", start="DTSTART:tomorrow"), "skipped"),
        ("a date in year 9999", vevent("bad", start="DTSTART;VALUE=DATE:99991231", end="DURATION:P1D"), "skipped"),
        ("a 9999-12-31 23:00 New York time", vevent("bad", start="DTSTART;TZID=America/New_York:99991231T230000",
                                                    end="DURATION:PT1H"), "skipped"),
        ("a duration of 2 million years", vevent("bad", end="DURATION:P99999999W"), "skipped"),
        ("an RRULE in RSCALE", vevent("bad", "RRULE:RSCALE=HEBREW;FREQ=YEARLY"), "rule"),
        ("INTERVAL=0", vevent("bad", "RRULE:FREQ=DAILY;INTERVAL=0"), "rule"),
        # Only ASCII digits are digits (RFC 5545's DIGIT); int() and \d also read other scripts'.
        ("a superscript digit in a date", vevent("bad", start="DTSTART;VALUE=DATE:2026010\u2075"), "skipped"),
        ("Arabic-Indic digits in a date-time", vevent("bad", start="DTSTART:\u0662\u0660\u0662\u0666\u0660\u0661"
                                                      "\u0660\u0665T090000Z"), "skipped"),
        ("Arabic-Indic digits in a DURATION", vevent("bad", end="DURATION:P\u0663D"), "skipped"),
        ("Arabic-Indic digits in an RRULE", vevent("bad", "RRULE:FREQ=DAILY;COUNT=\u0663"), "rule"),
        ("Arabic-Indic digits in SEQUENCE", vevent("bad", "SEQUENCE:\u0663"), "repaired"),
        ("SEQUENCE with an underscore", vevent("bad", "SEQUENCE:1_0"), "repaired"),
    ],
)
def test_what_real_producers_write_costs_one_event_at_most(name: str, broken: list[str], kind: str) -> None:
    text = cal(*vevent("before"), *broken, *vevent("after"))
    events, problems = read(text)
    assert {"before", "after"} <= set(events), name
    assert ("bad" in events) == (kind != "skipped"), name
    assert problems and {p.kind for p in problems} == {kind} and {p.uid for p in problems} == {"bad"}, name
    lines = text.split("\r\n")
    assert all(0 < p.line <= len(lines) for p in problems), name
    bad = events.get("bad")
    if kind == "rule":  # only the first visit is shown, and the series no longer expands
        assert bad is not None and bad.rrule is None
    if name.startswith("Exchange"):
        assert bad.rrule == "FREQ=WEEKLY;COUNT=4;BYDAY=MO,TU"


def test_text_after_the_calendar_is_noted_and_ignored() -> None:
    events, problems = read(cal(*vevent("a"), tail="<!-- served by proxy 7 -->\r\n"))
    assert set(events) == {"a"}
    assert [(p.kind, p.line) for p in problems] == [("repaired", 12)]


def test_a_feed_whose_every_event_fails_is_refused_with_the_line() -> None:
    text = cal(*vevent("x", start="DTSTART:tomorrow"), *vevent("y", start="DTSTART:later"))
    with pytest.raises(BadPayload) as caught:
        parse_feed(text.encode())
    assert caught.value.line == 7 and "line 7" in str(caught.value)


def test_the_copy_with_the_higher_sequence_wins_wherever_it_is() -> None:
    later = vevent("dup", "SEQUENCE:3", start="DTSTART;TZID=Europe/Berlin:20260105T150000",
                   end="DTEND;TZID=Europe/Berlin:20260105T160000")
    events, _ = read(cal(*vevent("dup", "SEQUENCE:1"), *later, *vevent("dup", "SEQUENCE:2")))
    assert events["dup"].start == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


def test_nothing_escapes_but_bad_payload_and_the_work_is_bounded() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from([
        "DTSTART:20260105T090000Z", "DTSTART;VALUE=DATE:99991231", "DTEND:00010101T000000", "DURATION:P99999999W",
        "DURATION:-PT5H", "RRULE:FREQ=DAILY;INTERVAL=0", "RRULE:FREQ=SECONDLY;COUNT=999999999", "RRULE:",
        "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "EXDATE;VALUE=DATE:", "EXDATE:20260106T090000Z,bad",
        "RDATE;VALUE=PERIOD:20260107T090000Z/PT1H", "RECURRENCE-ID;RANGE=THISANDFUTURE:20260105T090000Z",
        "DTSTART;TZID=Nowhere/Zone:20260105T090000", "STATUS:CANCELLED", "SEQUENCE:x", ";;;", "BEGIN:VALARM",
        "END:VALARM", " folded", "X-A;P=\"unterminated:1", "UID:", "END:VEVENT", "BEGIN:VEVENT",
    ])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.lists(pieces, max_size=8), max_size=4), st.text(max_size=30))
    def check(events: list[list[str]], tail: str) -> None:
        body = [line for lines in events for line in ["BEGIN:VEVENT", "UID:u", *lines, "END:VEVENT"]]
        try:
            found, _ = read(cal(*body, tail=tail))
        except BadPayload:
            return
        for event in found.values():
            event.start.astimezone(UTC) + timedelta(days=1)  # type: ignore[attr-defined]

    check()
