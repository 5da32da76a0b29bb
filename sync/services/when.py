"""Reading days and times people type: "tomorrow 3pm", "Tue 14:30", "4 Mar", ISO 8601.

The chat's grammar (bot.commands) and the lead intake (preferred times written on a form) both read
times with these rules; it is pure, so it sits in the services layer where both can use it.

Parsing is pure and clock-free (`parse_when`, `parse_day` -> specs); the spec is resolved later
against "now" and the practice's time zone (`WhenSpec.resolve`), so the same text means the same
wall-clock time wherever the server runs. Rules, in the clinic's terms:

- A weekday means the next such day, today included while the time is still ahead;
  "next Tue" always skips today.
- A day without a year means its next occurrence (today included).
- A reschedule with only a time keeps the appointment's day; with only a day it keeps the time.
- A time that does not exist because the clocks spring forward is refused; a time that happens
  twice when they fall back means the first one.
- An ISO time with an offset ("2026-03-04T14:30+01:00") is that instant, shown in the practice zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = ["EXAMPLE_REF", "DayRef", "ParseError", "TimeRef", "WhenSpec", "parse_day", "parse_when", "time_token",
           "wall_time", "weekday_number"]

#: The appointment id examples show until the person has typed one of their own.
EXAMPLE_REF = "A-1042"


class ParseError(ValueError):
    """Malformed command, time or card action, with an example of the right way. Raised before anything
    changes. (The chat's one input error: it lives here, beside the time grammar it was first made for,
    so sync can read times people write with the same rules; bot.commands.errors re-exports it.)"""

    def __init__(self, message: str, example: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.example = example

    def __str__(self) -> str:
        return f"{self.message} (e.g. `{self.example}`)" if self.example else self.message

    def about(self, appointment_id: int) -> ParseError:
        """The same error with the example naming the appointment the person typed."""
        return ParseError(self.message, self.example.replace(EXAMPLE_REF, f"A-{appointment_id}"))

WHEN_EXAMPLE = "reschedule A-1042 tomorrow 3pm"
DAY_EXAMPLE = "today"

_WEEKDAYS = {
    "mon": 0,
    "monday": 0,
    "tue": 1,
    "tues": 1,
    "tuesday": 1,
    "wed": 2,
    "weds": 2,
    "wednesday": 2,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "thursday": 3,
    "fri": 4,
    "friday": 4,
    "sat": 5,
    "saturday": 5,
    "sun": 6,
    "sunday": 6,
}
_MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ]
    )
    for name in names
}
# re.ASCII throughout: \d alone also matches other scripts' digits ("٣pm"), which int() reads as
# digits; a time or date is typed with 0-9 only, anything else gets the parser's own error.
_RELATIVE = {"today": 0, "tod": 0, "tomorrow": 1, "tmrw": 1, "tmr": 1, "yesterday": -1}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[t ]\d{1,2}:\d{2}(:\d{2}(\.\d{1,6})?)?(z|[+-]\d{2}(:?\d{2})?)?$", re.ASCII
)
_TIME_12 = re.compile(r"^(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)$", re.ASCII)
_TIME_24 = re.compile(r"^(\d{1,2})[:.h](\d{2})$", re.ASCII)
_ORDINAL = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?,?$", re.ASCII)
_YEAR = re.compile(r"^\d{4}$", re.ASCII)


#: How far from today a typed day may be: a year back (past visits) to five years ahead. Beyond
#: that a date is a typo, and near year 1 or 9999 the arithmetic overflows.
DAYS_BACK, DAYS_AHEAD = 366, 5 * 366


def check_day(day: date, today: date, text: str = "") -> date:
    """`day` if it is within DAYS_BACK..DAYS_AHEAD of `today`; otherwise a ParseError saying the range."""
    low, high = today.toordinal() - DAYS_BACK, today.toordinal() + DAYS_AHEAD
    if low <= day.toordinal() <= high:
        return day
    first = date.fromordinal(max(low, 1))
    last = date.fromordinal(min(high, date.max.toordinal()))
    shown = text or f"{day.day} {_month_name(day.month)} {day.year}"
    raise ParseError(
        f"{shown!r} is too far off: pick a day between {first.day} {_month_name(first.month)} {first.year} "
        f"and {last.day} {_month_name(last.month)} {last.year}",
        "today",
    )


@dataclass(frozen=True, slots=True)
class DayRef:
    """A day as typed: relative ("tomorrow"), a weekday ("Tue"), or a calendar date ("4 Mar")."""

    kind: Literal["offset", "weekday", "date"]
    offset: int = 0
    weekday: int = 0
    skip_today: bool = False
    month: int = 0
    day: int = 0
    year: int | None = None

    def resolve(self, today: date, not_before: time | None = None, now: time | None = None) -> date:
        """The calendar date this means, seen from `today` (in the practice's zone).

        With `not_before` (the time of day being booked) and `now`, a weekday equal to today's
        only counts as today while that time is still ahead.
        """
        if self.kind == "offset":
            if not -DAYS_BACK <= self.offset <= DAYS_AHEAD:
                check_day(date.max if self.offset > 0 else date.min, today, f"{self.offset:+d} days")
            return today + timedelta(days=self.offset)
        if self.kind == "weekday":
            ahead = (self.weekday - today.weekday()) % 7
            if ahead == 0 and (self.skip_today or (not_before is not None and now is not None and not_before <= now)):
                ahead = 7
            return today + timedelta(days=ahead)
        if self.year is not None:
            try:
                found = date(self.year, self.month, self.day)
            except ValueError:
                raise ParseError(
                    f"{self.year} has no {self.day} {_month_name(self.month)}",
                    "reschedule A-1042 28 Feb 10:00",
                ) from None
            return check_day(found, today)
        # The next occurrence, today included (29 Feb may be up to four years away).
        for year in range(today.year, today.year + 5):
            try:
                found = date(year, self.month, self.day)
            except ValueError:
                continue
            if found >= today:
                return found
        raise ParseError(f"there is no {self.day} {_month_name(self.month)}", "reschedule A-1042 28 Feb 10:00")


@dataclass(frozen=True, slots=True)
class TimeRef:
    hour: int
    minute: int

    def as_time(self) -> time:
        return time(self.hour, self.minute)

    def __str__(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}"


@dataclass(frozen=True, slots=True)
class WhenSpec:
    """A parsed `<when>`: a day and/or a time, or an exact ISO instant."""

    text: str
    day: DayRef | None = None
    time: TimeRef | None = None
    instant: datetime | None = None  # ISO with an offset
    naive: datetime | None = None  # ISO without one: wall time in the practice zone

    def resolve(self, now: datetime, tz: str, keep: datetime | None = None) -> datetime:
        """The aware datetime meant, in zone `tz`; `keep` supplies the missing day or time."""
        zone = ZoneInfo(tz)
        if self.instant is not None:
            check_day(self.instant.date(), now.date(), self.text)
            return self.instant.astimezone(zone)
        if self.naive is not None:
            check_day(self.naive.date(), now.date(), self.text)
            return wall_time(self.naive.date(), self.naive.time(), zone, self.text)
        local_now = now.astimezone(zone)
        kept = keep.astimezone(zone) if keep is not None else None
        if self.time is not None:
            at = self.time.as_time()
        elif kept is not None:
            at = kept.time().replace(second=0, microsecond=0)
        else:
            raise ParseError(f"{self.text!r} has a day but no time", WHEN_EXAMPLE)
        if self.day is not None:
            day = self.day.resolve(local_now.date(), at, local_now.time())
        elif kept is not None:
            day = kept.date()
        else:
            day = local_now.date()
        return wall_time(check_day(day, local_now.date(), self.text), at, zone, self.text)


def _month_name(month: int) -> str:
    return date(2000, month, 1).strftime("%b")


def wall_time(day: date, at: time, zone: ZoneInfo, text: str = "") -> datetime:
    """`day` at `at` in `zone`; refuses times skipped by a DST change, takes the first of repeated ones."""
    local = datetime.combine(day, at, zone).replace(fold=0)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ParseError(
            f"{at:%H:%M} does not exist on {day:%a %d %b} in {zone.key}: the clocks go forward then",
            "reschedule A-1042 tomorrow 3pm",
        )
    return local


def weekday_number(word: str) -> int | None:
    """Monday=0 .. Sunday=6 for a weekday as people write it ("tue", "Tuesdays"); None for other words."""
    low = word.lower().strip(".,;")
    if low not in _WEEKDAYS and low.endswith("s"):
        low = low[:-1]
    return _WEEKDAYS.get(low)


def time_token(tok: str) -> TimeRef | None:
    """A time of day as one token ('3pm', '15:30', 'noon'); None when it is not one (ParseError when it
    looks like one but is not: '13pm')."""
    return _time_token(tok)


def _time_token(tok: str) -> TimeRef | None:
    """'3pm', '3:30pm', '15:30', '15.30', '14h30', 'noon', 'midnight' -> TimeRef; None if not a time."""
    if tok in ("noon", "midday"):
        return TimeRef(12, 0)
    if tok == "midnight":
        return TimeRef(0, 0)
    m = _TIME_12.match(tok)
    if m:
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        if not 1 <= hour <= 12:
            raise ParseError(f"{tok!r} is not a time: with am/pm the hour is 1 to 12", "tomorrow 3pm")
        if minute > 59:
            raise ParseError(f"{tok!r} is not a time: minutes go up to 59", "tomorrow 3:30pm")
        pm = m.group(3).startswith("p")
        return TimeRef(hour % 12 + (12 if pm else 0), minute)
    m = _TIME_24.match(tok)
    if m:
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour > 23 or minute > 59:
            raise ParseError(f"{tok!r} is not a time of day (00:00 to 23:59)", "Tue 14:30")
        return TimeRef(hour, minute)
    return None


def _iso(text: str) -> WhenSpec | None:
    low = text.lower()
    if _ISO_DATE.match(low):
        try:
            d = date.fromisoformat(low)
        except ValueError:
            raise ParseError(f"{text!r} is not a real date", "2026-03-04") from None
        return WhenSpec(text=text, day=DayRef("date", month=d.month, day=d.day, year=d.year))
    if _ISO_DATETIME.match(low):
        norm = low.replace(" ", "t", 1).upper()
        # fromisoformat wants two-digit hours
        norm = re.sub(r"T([0-9]):", r"T0\1:", norm)
        try:
            dt = datetime.fromisoformat(norm)
        except ValueError:
            raise ParseError(f"{text!r} is not a real date and time", "2026-03-04T14:30") from None
        if dt.tzinfo is not None:
            return WhenSpec(text=text, instant=dt)
        return WhenSpec(text=text, naive=dt)
    return None


def _other_digits(tok: str) -> bool:
    """Whether `tok` holds a digit other than 0-9 ("٣", "³")."""
    return any(c.isdigit() and not c.isascii() for c in tok)


def _tokens(text: str) -> list[str]:
    toks = text.lower().replace(",", " ").split()
    # "3 pm" -> "3pm"
    merged: list[str] = []
    for tok in toks:
        if tok in ("am", "pm", "a.m.", "p.m.") and merged and re.fullmatch(r"[0-9]{1,2}([:.][0-9]{2})?", merged[-1]):
            merged[-1] += tok
        else:
            merged.append(tok)
    return [t for t in merged if t not in ("at", "on", "@")]


def _take_day(toks: list[str], i: int) -> tuple[DayRef, int] | None:
    """Read a day starting at toks[i]; return it and the index after it, or None."""
    tok = toks[i]
    if tok in _RELATIVE:
        return DayRef("offset", offset=_RELATIVE[tok]), i + 1
    if tok in ("next", "this") and i + 1 < len(toks) and toks[i + 1] in _WEEKDAYS:
        return DayRef("weekday", weekday=_WEEKDAYS[toks[i + 1]], skip_today=tok == "next"), i + 2
    if tok in _WEEKDAYS:
        return DayRef("weekday", weekday=_WEEKDAYS[tok]), i + 1
    if _ISO_DATE.match(tok):
        spec = _iso(tok)
        assert spec is not None and spec.day is not None
        return spec.day, i + 1
    # "4 Mar [2026]" or "Mar 4 [2026]"
    month = day = None
    j = i
    if tok in _MONTHS and i + 1 < len(toks) and _ORDINAL.match(toks[i + 1]):
        month, day, j = _MONTHS[tok], int(_ORDINAL.match(toks[i + 1]).group(1)), i + 2  # type: ignore[union-attr]
    elif _ORDINAL.match(tok) and i + 1 < len(toks) and toks[i + 1] in _MONTHS:
        day, month, j = int(_ORDINAL.match(tok).group(1)), _MONTHS[toks[i + 1]], i + 2  # type: ignore[union-attr]
    if month is None or day is None:
        return None
    year = None
    if j < len(toks) and _YEAR.match(toks[j]):
        year, j = int(toks[j]), j + 1
    try:
        date(year if year is not None else 2000, month, day)  # 2000 is a leap year: 29 Feb stays possible
    except ValueError:
        raise ParseError(f"there is no {day} {_month_name(month)}", "reschedule A-1042 4 Mar 10:00") from None
    return DayRef("date", month=month, day=day, year=year), j


def parse_when(text: str, *, example: str = WHEN_EXAMPLE) -> WhenSpec:
    """Parse a `<when>` for reschedule: a day, a time, both, or ISO 8601. Raises ParseError."""
    try:
        return _parse_when(text, example)
    except ParseError as exc:
        # Examples offered must be whole commands people can type as they are.
        raise ParseError(exc.message, example) from None


def _parse_when(text: str, example: str) -> WhenSpec:
    text = " ".join(text.split())
    if not text:
        raise ParseError("say when: a day, a time, or both", example)
    iso = _iso(text)
    if iso is not None:
        return iso
    toks = _tokens(text)
    day: DayRef | None = None
    at: TimeRef | None = None
    i = 0
    while i < len(toks):
        got_day = _take_day(toks, i)
        if got_day is not None:
            if day is not None:
                raise ParseError(f"{text!r} names two days", example)
            day, i = got_day
            continue
        got_time = _time_token(toks[i])
        if got_time is not None:
            if at is not None:
                raise ParseError(f"{text!r} names two times", example)
            at, i = got_time, i + 1
            continue
        if re.fullmatch(r"[0-9]{1,2}", toks[i]):
            raise ParseError(
                f"{toks[i]!r} is ambiguous: write {toks[i]}am, {toks[i]}pm or {int(toks[i]):02d}:00", example
            )
        hint = ": write numbers with the digits 0-9" if _other_digits(toks[i]) else ""
        raise ParseError(f"couldn't read {toks[i]!r} as a day or a time{hint}", example)
    if day is None and at is None:
        raise ParseError("say when: a day, a time, or both", example)
    return WhenSpec(text=text, day=day, time=at)


def parse_day(text: str, *, example: str = DAY_EXAMPLE) -> DayRef:
    """Parse a day for the agenda: today, tomorrow, a weekday, "4 Mar" or 2026-03-04."""
    toks = _tokens(text)
    if not toks:
        raise ParseError("say which day", example)
    try:
        got = _take_day(toks, 0)
    except ParseError as exc:
        raise ParseError(exc.message, example) from None
    if got is None:
        raise ParseError(f"couldn't read {text.strip()!r} as a day", "tomorrow")
    day, end = got
    if end != len(toks):
        raise ParseError(f"couldn't read {' '.join(toks[end:])!r} after the day", "tue @dr-lee")
    return day
