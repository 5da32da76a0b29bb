"""A scheduler's schedule export (CSV) read into a ShiftSnapshot, or refused naming the row.

Schedulers (Lightning Bolt, QGenda, Deputy) export one row per assignment. The columns are found by
their header, in any order and any case; the names below are the ones exports use:

- person: `Person`, `Name`, `Provider`, `Personnel`, `Employee` (required);
- identity fields: `UniqueID`, `Custom1` ... `Custom4` (any may hold the Microsoft UPN or object id);
- `Assignment` (or `Shift`) and `Start`, `End` (required); `Notes` (or `Schedule Notes`);
- `Published` (yes/no, true/false, 1/0; a missing column means every row is published);
- `Shift ID` (or `ID`): a stable id. Without it the id is derived from the person, the assignment and the
  local start date, so a shift moved within its day is an update, and one moved to another day is a
  removal and an addition.

Times: ISO 8601 (`2026-12-07T07:00`, `2026-12-07 07:00`, with or without an offset) or the US form
`12/07/2026 7:00 AM`. Times without an offset are in the practice's zone. An end earlier than its start
on the same date is the next morning (a night shift). Nothing is read from a file that fails: the
first bad row is named, with what is wrong in it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sync.contract import BadPayload
from sync.contract.shifts import Shift, ShiftPerson, ShiftSnapshot

__all__ = ["MAX_CELL", "MAX_ROWS", "PROVIDER", "looks_like_formula", "parse_csv", "parse_time"]

PROVIDER = "shifts"
MAX_ROWS = 100_000
MAX_CELL = 4000

_COLUMNS: dict[str, tuple[str, ...]] = {
    "person": ("person", "name", "provider", "personnel", "employee", "staff"),
    "unique_id": ("uniqueid", "unique_id", "unique id"),
    "custom1": ("custom1", "custom 1"),
    "custom2": ("custom2", "custom 2"),
    "custom3": ("custom3", "custom 3"),
    "custom4": ("custom4", "custom 4"),
    "assignment": ("assignment", "shift", "assignment name", "shift name"),
    "start": ("start", "start time", "starts", "begin"),
    "end": ("end", "end time", "ends", "finish"),
    "notes": ("notes", "schedule notes", "note"),
    "published": ("published", "is published", "status"),
    "id": ("shift id", "id", "assignment id", "shiftid"),
}
_REQUIRED = ("person", "assignment", "start", "end")
_YES = {"yes", "y", "true", "1", "published"}
_NO = {"no", "n", "false", "0", "unpublished", "draft", "not published"}
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{1,2}:\d{2}(:\d{2})?)?(Z|[+-]\d{2}:?\d{2})?$", re.ASCII)
_US = re.compile(
    r"^(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})(\s+(?P<h>\d{1,2}):(?P<mi>\d{2})(:\d{2})?\s*(?P<ap>[AaPp][Mm])?)?$",
    re.ASCII,
)
#: A cell a spreadsheet would run as a formula (CSV injection): refused, never stored or echoed back.
_FORMULA = re.compile(r"^[=@]|^[+-][^\d\s.]|^\t|^\r", re.ASCII)


def _bad(message: str, row: int | None = None) -> BadPayload:
    where = f"row {row}: " if row is not None else ""
    return BadPayload(f"schedule file: {where}{message}", line=row, provider=PROVIDER)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")  # Excel's "CSV" on Windows
    except UnicodeDecodeError:
        raise _bad("the file is neither UTF-8 nor Windows-1252 text; export it as CSV (UTF-8)") from None


def _header_map(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = " ".join(raw.strip().lower().split())
        for key, names in _COLUMNS.items():
            if name in names and key not in found:
                found[key] = index
                break
    missing = [k for k in _REQUIRED if k not in found]
    if missing:
        raise _bad(
            f"the header has no {', '.join(missing)} column (columns found: "
            f"{', '.join(h.strip() for h in header if h.strip()) or 'none'})",
            1,
        )
    return found


def parse_time(text: str, zone: ZoneInfo, row: int, what: str) -> tuple[datetime, bool]:
    """(aware time, whether the text gave a time of day); BadPayload naming the row."""
    value = text.strip()
    if _ISO.match(value):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _bad(f"{what} {value!r} is not a real date and time", row) from None
        has_time = len(value) > 10
    else:
        m = _US.match(value)
        if not m:
            raise _bad(f"{what} {value!r} is not a date and time (use 2026-12-07 07:00 or 12/07/2026 7:00 AM)", row)
        try:
            hour, minute = int(m["h"] or 0), int(m["mi"] or 0)
            if m["ap"]:
                if not 1 <= hour <= 12:
                    raise ValueError
                hour = hour % 12 + (12 if m["ap"].lower() == "pm" else 0)
            parsed = datetime.combine(date(int(m["y"]), int(m["m"]), int(m["d"])), time(hour, minute))
        except ValueError:
            raise _bad(f"{what} {value!r} is not a real date and time", row) from None
        has_time = m["h"] is not None
    if parsed.year < 2000 or parsed.year > 2100:
        raise _bad(f"{what} {value!r} is outside the years 2000-2100", row)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed, has_time


def looks_like_formula(value: str) -> bool:
    """Whether a spreadsheet would run `value` as a formula (CSV injection)."""
    return bool(_FORMULA.match(value))


def _cell(cells: list[str], columns: dict[str, int], key: str, row: int) -> str:
    index = columns.get(key)
    if index is None or index >= len(cells):
        return ""
    value = cells[index]
    if len(value) > MAX_CELL:
        raise _bad(f"the {key} cell is longer than {MAX_CELL} characters", row)
    if value and _FORMULA.match(value):
        raise _bad(f"the {key} cell holds a spreadsheet formula ({value[:20]!r}); export values, not formulas", row)
    return value.strip()


def parse_csv(name: str, data: bytes, zone_name: str) -> ShiftSnapshot:
    """Read a schedule export; BadPayload naming the first bad row (nothing is kept from a bad file)."""
    zone = ZoneInfo(zone_name)
    text = _decode(data)
    if "\x00" in text:
        raise _bad("the file holds binary data; export the schedule as CSV")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise _bad("the file is empty")
        columns = _header_map(header)
        shifts: list[Shift] = []
        seen: dict[str, int] = {}
        for row_number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(shifts) >= MAX_ROWS:
                raise _bad(f"more than {MAX_ROWS} shifts in one file; export a shorter window", row_number)
            shifts.append(_shift(cells, columns, zone, row_number, seen))
    except csv.Error as exc:
        raise _bad(f"not readable as CSV ({exc})", reader.line_num) from None
    if not shifts:
        raise _bad("the file has a header but no shifts")
    start = min(s.start for s in shifts).astimezone(zone)
    end = max(s.end for s in shifts).astimezone(zone)
    day_start = datetime.combine(start.date(), time(0), tzinfo=zone)
    day_end = datetime.combine(end.date() + timedelta(days=1), time(0), tzinfo=zone)
    return ShiftSnapshot(shifts=tuple(shifts), start=day_start, end=day_end, origin=name)


def _shift(cells: list[str], columns: dict[str, int], zone: ZoneInfo, row: int, seen: dict[str, int]) -> Shift:
    person_name = _cell(cells, columns, "person", row)
    assignment = _cell(cells, columns, "assignment", row)
    if not person_name:
        raise _bad("the person is empty", row)
    if not assignment:
        raise _bad("the assignment is empty", row)
    start, _ = parse_time(_cell(cells, columns, "start", row), zone, row, "start")
    end, end_has_time = parse_time(_cell(cells, columns, "end", row), zone, row, "end")
    if not end_has_time:
        end = end + timedelta(days=1)  # a date-only end is the end of that day
    if end < start and end.date() == start.date():
        end = end + timedelta(days=1)  # 19:00 to 07:00: a night shift ends the next morning
    if end <= start:
        raise _bad(f"the shift ends ({end:%Y-%m-%d %H:%M}) before it starts ({start:%Y-%m-%d %H:%M})", row)
    if end - start > timedelta(days=7):
        raise _bad("the shift is longer than 7 days", row)
    published_text = _cell(cells, columns, "published", row).lower()
    if published_text and published_text not in _YES | _NO:
        raise _bad(f"published must be yes or no, got {published_text!r}", row)
    person = ShiftPerson(
        name=person_name,
        unique_id=_cell(cells, columns, "unique_id", row),
        custom1=_cell(cells, columns, "custom1", row),
        custom2=_cell(cells, columns, "custom2", row),
        custom3=_cell(cells, columns, "custom3", row),
        custom4=_cell(cells, columns, "custom4", row),
    )
    given = _cell(cells, columns, "id", row)
    key = given or _derived_key(person, assignment, start.astimezone(zone).date())
    if len(key) > 200:
        raise _bad("the shift id is longer than 200 characters", row)
    if key in seen:
        if given:
            raise _bad(f"shift id {key!r} is also on row {seen[key]}", row)
        ordinal = 2
        while f"{key}#{ordinal}" in seen:
            ordinal += 1
        key = f"{key}#{ordinal}"  # the same person twice on one assignment and day (a split shift)
    seen[key] = row
    return Shift(
        key=key,
        person=person,
        assignment=assignment,
        start=start,
        end=end,
        notes=_cell(cells, columns, "notes", row),
        published=published_text not in _NO,
    )


def _derived_key(person: ShiftPerson, assignment: str, day: date) -> str:
    who = person.unique_id or person.name
    digest = hashlib.sha256(f"{who.casefold()}\x1f{assignment.casefold()}\x1f{day.isoformat()}".encode()).hexdigest()
    return f"d-{digest[:32]}"
