"""Reading a scheduler's schedule export: the columns exports use, and a clear refusal naming the row."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from adapters.shifts import parse_csv
from sync.contract import BadPayload

NY = "America/New_York"
HEADER = "Person,UniqueID,Custom1,Custom2,Custom3,Custom4,Assignment,Start,End,Notes,Published\n"


def parse(text: str, name: str = "schedule.csv") -> list:
    return list(parse_csv(name, text.encode(), NY).shifts)


def test_reads_a_lightning_bolt_style_export_in_the_practice_zone() -> None:
    snap = parse_csv("dec.csv", (
        HEADER
        + "Ann Lee,LB-100,ann@clinic.example,,,,Day clinic,2026-12-07 07:00,2026-12-07 15:00,Bring pager,Yes\n"
        + "Bob Ng,LB-200,,bob@clinic.example,,,Night call,12/07/2026 7:00 PM,12/07/2026 7:00 AM,,yes\n"
        + "Cy Roe,LB-300,,,,,Day clinic,2026-12-08T07:00-05:00,2026-12-08T15:00-05:00,,No\n"
    ).encode("utf-8-sig"), NY)
    ann, bob, cy = snap.shifts
    zone = ZoneInfo(NY)
    assert ann.person.name == "Ann Lee" and ann.person.identity("custom1") == "ann@clinic.example"
    assert ann.start == datetime(2026, 12, 7, 7, tzinfo=zone) and ann.notes == "Bring pager" and ann.published
    # 7 PM to 7 AM on the same date is a night shift ending the next morning.
    assert bob.start == datetime(2026, 12, 7, 19, tzinfo=zone) and bob.end == datetime(2026, 12, 8, 7, tzinfo=zone)
    assert bob.person.identity("custom2") == "bob@clinic.example" and bob.person.identity("custom1") == ""
    assert not cy.published
    assert snap.start == datetime(2026, 12, 7, tzinfo=zone) and snap.end == datetime(2026, 12, 9, tzinfo=zone)
    assert snap.origin == "dec.csv"
    # Without a shift id column, ids are stable across exports and differ per person, assignment and day.
    again = parse_csv("dec.csv", (HEADER + "Ann Lee,LB-100,ann@clinic.example,,,,Day clinic,2026-12-07 08:00,"
                                  "2026-12-07 16:00,,Yes\n").encode(), NY)
    assert again.shifts[0].key == ann.key and len({ann.key, bob.key, cy.key}) == 3


def test_columns_in_any_order_and_case_with_an_explicit_shift_id() -> None:
    rows = parse("shift id,END,start,assignment,name\nS1,2026-12-07 15:00,2026-12-07 07:00,Day,Ann\n")
    assert rows[0].key == "S1" and rows[0].assignment == "Day" and rows[0].published


@pytest.mark.parametrize(
    ("text", "row", "words"),
    [
        ("Person,Start,End\nAnn,2026-12-07 07:00,2026-12-07 08:00\n", 1, "no assignment column"),
        (HEADER + "Ann,,,,,,Day,2026-13-07 07:00,2026-12-07 08:00,,yes\n", 2, "not a real date"),
        (HEADER + "Ann,,,,,,Day,tomorrow,2026-12-07 08:00,,yes\n", 2, "not a date and time"),
        (HEADER + "Ann,,,,,,Day,2026-12-07 07:00,2026-12-07 08:00,,yes\n"
         + "Bob,,,,,,=HYPERLINK(\"http://x\"),2026-12-07 07:00,2026-12-07 08:00,,yes\n", 3, "formula"),
        (HEADER + "Ann,,,,,,Day,2026-12-07 07:00,2026-12-07 08:00,,maybe\n", 2, "yes or no"),
        (HEADER + ",,,,,,Day,2026-12-07 07:00,2026-12-07 08:00,,yes\n", 2, "person is empty"),
        (HEADER + "Ann,,,,,,Day,2026-12-07 07:00,2026-12-07 07:00,,yes\n", 2, "before it starts"),
        (HEADER + "Ann,,,,,,Day,2026-12-07 07:00,2026-12-20 07:00,,yes\n", 2, "longer than 7 days"),
        (HEADER + "Ann,,,,,,Day,9999-12-07 07:00,9999-12-07 08:00,,yes\n", 2, "outside the years"),
        ("Shift ID,Person,Assignment,Start,End\nS1,Ann,Day,2026-12-07 07:00,2026-12-07 08:00\n"
         "S1,Bob,Day,2026-12-07 07:00,2026-12-07 08:00\n", 3, "also on row 2"),
        (HEADER, None, "no shifts"),
        ("", None, "empty"),
    ],
)
def test_a_bad_file_is_refused_naming_its_row(text: str, row: int | None, words: str) -> None:
    with pytest.raises(BadPayload, match=words) as caught:
        parse(text)
    assert caught.value.line == row
    if row is not None:
        assert f"row {row}:" in str(caught.value)


def test_binary_and_undecodable_files_are_refused() -> None:
    with pytest.raises(BadPayload, match="binary"):
        parse_csv("x.csv", b"PK\x03\x04\x00\x00" + HEADER.encode(), NY)
    # Windows-1252 exports are read (Excel's CSV on Windows).
    snap = parse_csv("x.csv", (HEADER + "Zoë Ärz,,,,,,Day,2026-12-07 07:00,2026-12-07 08:00,,yes\n").encode("cp1252"),
                     NY)
    assert snap.shifts[0].person.name == "Zoë Ärz"


def test_a_split_shift_gets_its_own_id() -> None:
    rows = parse(HEADER + "Ann,,,,,,Day,2026-12-07 07:00,2026-12-07 09:00,,yes\n"
                 + "Ann,,,,,,Day,2026-12-07 13:00,2026-12-07 17:00,,yes\n")
    assert rows[1].key == rows[0].key + "#2"
