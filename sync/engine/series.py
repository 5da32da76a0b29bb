"""Occurrences of recurring series, for the views and checks that ask about a span of time.

A calendar that keeps series as series (CalDAV, iCloud, ICS feeds) gives one appointment row for
the whole series: its first occurrence in `start`/`end`, its RRULE, its EXDATEs, and one more row
per changed occurrence (an override, keyed by `recurrence_key`). A query on `start`/`end` alone
finds a weekly visit only on its first day. `occurrences_between` finds the series' visits in a
span: expanded in the series' own zone (09:00 stays 09:00 across a DST change), without EXDATEs,
and without the occurrences an override replaces (the override rows are found as single rows).

Each occurrence is a transient copy of its series row: never added to a session, same id and
ref as the series, with that occurrence's times. A series is changed in its calendar, not from
chat (see `is_series`).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from time import monotonic as time_now
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta
from dateutil.rrule import rrulestr
from sqlalchemy import ColumnElement, Select, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.engine.recurrence import FUTURE, recurrence_key
from sync.store.model import Appointment

__all__ = [
    "describe", "expand", "is_series", "occurrences_between", "parse_exdates", "refuse_change", "rule_parts",
    "rule_problem", "single", "visit", "visit_at", "visit_starts",
]  # fmt: skip

log = logging.getLogger("clinicbot.series")
# Every rule is stopped at the end of the span asked about, COUNT or not; dateutil calls COUNT with
# UNTIL deprecated, but the pair means exactly "the first COUNT, up to UNTIL" here.
warnings.filterwarnings("ignore", message=".*count.*until.*", category=DeprecationWarning)

_DATE_UNTIL = re.compile(r"UNTIL=([0-9]{8})(?=;|$)")
#: Occurrences looked at per series and span at most (a daily series over 30 years; a bad rule).
MAX_STEPS = 12_000
#: Wall-clock limit for expanding all the series of one query (each one's work is bounded too).
EXPAND_SECONDS = 10.0


def parse_exdates(raw: Iterable[Any] | None) -> tuple[datetime, ...]:
    """A row's stored EXDATEs (ISO texts) as datetimes."""
    return tuple(datetime.fromisoformat(x) for x in raw or () if isinstance(x, str))


def is_series(appt: Appointment) -> bool:
    """True for the row of a whole recurring series (not for one of its overrides)."""
    return bool(appt.rrule) and not appt.recurrence_key


_UNIT = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}
_DAYS = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday", "SA": "Saturday",
         "SU": "Sunday"}  # fmt: skip
_NTH = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last", -2: "second to last"}
_BYDAY = re.compile(r"^([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")


def _on_days(byday: str) -> str:
    """ "on Tuesday and Sunday", "on the first Monday" for an RRULE's BYDAY; "" when unreadable."""
    named: list[tuple[int, str]] = []
    for part in filter(None, byday.upper().split(",")):
        m = _BYDAY.match(part.strip())
        if m is None:
            return ""
        nth = _NTH.get(int(m.group(1))) if m.group(1) else None
        if m.group(1) and nth is None:
            return ""
        named.append((list(_DAYS).index(m.group(2)), f"the {nth} {_DAYS[m.group(2)]}" if nth else _DAYS[m.group(2)]))
    names = [n for _, n in sorted(named)]
    if not names:
        return ""
    return "on " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])


def describe(appt: Appointment, tz: str) -> str:
    """ "Repeats every week on Tuesday and Sunday since Tue 3 Mar 2026; ..." for a series row, "" otherwise.

    Pass the series row itself: a visit's copy starts on that visit, not on the series' first day.
    """
    if not is_series(appt):
        return ""
    first = (appt.rrule or "").split("\n")[0]  # a series of several rules is described by its first
    parts = dict(p.partition("=")[::2] for p in first.upper().removeprefix("RRULE:").split(";"))
    unit, interval = _UNIT.get(parts.get("FREQ", "")), parts.get("INTERVAL", "1")
    if unit is None:
        every = "on a schedule"
    else:
        every = f"every {unit}" if interval in ("", "1") else f"every {interval} {unit}s"
        days = _on_days(parts.get("BYDAY", ""))
        every += f" {days}" if days else ""
    since = appt.start.astimezone(_zone(tz))
    return (
        f"Repeats {every} since {since:%a} {since.day} {since:%b %Y}. A repeating visit is changed "
        "in the calendar it comes from; chat shows each visit."
    )


def visit_at(series_row: Appointment, start: datetime) -> Appointment | None:
    """The visit of series `series_row` that starts at `start`, or None when there is none then."""
    if not is_series(series_row):
        return None
    for s, e in expand(series_row, start, start + timedelta(seconds=1), skip_ahead=True):
        if s == start:
            return visit(series_row, s, e)
    return None


def refuse_change(appt: Appointment) -> str | None:
    """Why a change from chat to this row is refused (it stands for a whole series), or None."""
    if is_series(appt):
        return (
            f"{appt.ref} repeats; changing it here would change every visit of the series. "
            "Move or cancel one visit, or the series, in the calendar it comes from"
        )
    return None


def single() -> ColumnElement[bool]:
    """Rows that are themselves one appointment: not a series row (overrides included)."""
    return Appointment.rrule.is_(None) | (Appointment.rrule == "") | (Appointment.recurrence_key != "")


def _zone(tzid: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tzid) if tzid else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


_FIXED_STEP = {
    "SECONDLY": timedelta(seconds=1), "MINUTELY": timedelta(minutes=1), "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1), "WEEKLY": timedelta(weeks=1),
}  # fmt: skip


@lru_cache(maxsize=8192)
def rule_parts(rrule: str) -> dict[str, str]:
    """An RRULE's NAME=VALUE parts, names upper-cased (no validation; kept, so not to be changed)."""
    parts: dict[str, str] = {}
    for part in rrule.strip().removeprefix("RRULE:").split(";"):
        name, _, value = part.partition("=")
        parts[name.strip().upper()] = value.strip()
    return parts


def rule_problem(rrule: str) -> str | None:
    """Why an RRULE is refused before dateutil sees it (INTERVAL below 1 never advances: dateutil
    would loop inside one `next()` for ever), or None."""
    if not rrule.isascii():  # RFC 5545 rules are ASCII; int() and dateutil read "INTERVAL=٣" as 3
        return "characters other than ASCII"
    interval = rule_parts(rrule).get("INTERVAL")
    if interval:
        if not re.fullmatch(r"[0-9]{1,9}", interval):  # int() also takes "+1", " 1" and "1_0"
            return "INTERVAL is not a number"
        if int(interval) < 1:
            return "INTERVAL below 1"
    return None


def _skip_ahead(rrule: str, dtstart: datetime, lead: datetime) -> datetime:
    """`dtstart` moved forward by whole periods of the rule, to at most two periods before `lead`,
    where that gives the same occurrences after it: no COUNT, and a period that is a fixed number
    of wall-clock seconds, days, or months from a day every month has. Saves walking a years-old
    series visit by visit on every look (the reminder sweep looks at every series each minute)."""
    parts = rule_parts(rrule)
    if "COUNT" in parts:
        return dtstart
    try:
        interval = max(1, int(parts.get("INTERVAL") or 1))
    except ValueError:
        return dtstart
    wall = dtstart.replace(tzinfo=None)
    target = (lead.astimezone(dtstart.tzinfo) if dtstart.tzinfo is not None else lead).replace(tzinfo=None)
    if target <= wall:
        return dtstart
    freq = parts.get("FREQ", "").upper()
    if freq in _FIXED_STEP:
        step = _FIXED_STEP[freq] * interval
        periods = (target - wall) // step - 1
        moved = wall + step * periods if periods > 0 else wall
    elif freq in ("MONTHLY", "YEARLY") and wall.day <= 28:
        months = interval * (12 if freq == "YEARLY" else 1)
        periods = ((target.year - wall.year) * 12 + target.month - wall.month) // months - 1
        moved = wall + relativedelta(months=months * periods) if periods > 0 else wall
    else:
        return dtstart
    return moved.replace(tzinfo=dtstart.tzinfo)


#: Series whose unreadable rule was logged already: said once per series, not on every sweep.
_LOGGED_UNREADABLE: set[object] = set()


def _unreadable(appt: Appointment, why: str) -> None:
    key = (getattr(appt, "id", None), appt.rrule)
    if key not in _LOGGED_UNREADABLE:
        if len(_LOGGED_UNREADABLE) > 10_000:
            _LOGGED_UNREADABLE.clear()
        _LOGGED_UNREADABLE.add(key)
        log.warning("unreadable RRULE; showing the first visit only",
                    extra={"appointment_id": getattr(appt, "id", None), "error": why[:80]})


def _parsed(text: str, dtstart: datetime, all_day: bool) -> Any:
    """dateutil's reading of a rule, kept: the reminder sweep expands every series each minute,
    from the same (skipped-ahead) DTSTART for a whole period, and reading the text is most of the
    cost. Rules are never changed in place (`replace` makes a new one). Kept by wall time and zone:
    two aware datetimes of one instant are equal, but 15:00 UTC weekly is not 16:00 Berlin weekly."""
    return _parsed_in(text, dtstart.replace(tzinfo=None), dtstart.tzinfo, all_day)


@lru_cache(maxsize=8192)
def _parsed_in(text: str, wall: datetime, zone: tzinfo | None, all_day: bool) -> Any:
    return rrulestr(text, dtstart=wall.replace(tzinfo=zone), ignoretz=all_day)


def _rule(text: str, dtstart: datetime, bound: datetime, all_day: bool) -> Any:
    """One dateutil rule for RRULE `text`, stopped at `bound`: its work ends with the span asked
    about (a date that never comes, BYMONTH=2;BYMONTHDAY=30, is otherwise looked for until 9999)."""
    try:
        rule: Any = _parsed(text, dtstart, all_day)
    except (ValueError, TypeError):
        if all_day:
            raise
        # e.g. a date-only UNTIL on a timed series (RFC 5545 says not to; some send it): read the
        # rule in the series' wall-clock time, that UNTIL as the end of its day
        fixed = _DATE_UNTIL.sub(r"UNTIL=\1T235959", text)
        rule = rrulestr(fixed, dtstart=dtstart.replace(tzinfo=None), ignoretz=True)
        bound = bound.astimezone(dtstart.tzinfo).replace(tzinfo=None)
    until = getattr(rule, "_until", None)
    if until is None or until > bound:
        rule = rule.replace(until=bound)
    return rule


def expand(
    appt: Appointment, start: datetime, end: datetime, *, skip_ahead: bool = True
) -> list[tuple[datetime, datetime]]:
    """(start, end) of each occurrence of series `appt` overlapping [start, end), EXDATEs left out.

    DTSTART is always the first visit, whether or not the rule produces it (RFC 5545; the other
    paths agree). A rule that cannot be read, or one refused by `rule_problem`, shows the first
    visit only and is logged once. The work is bounded whatever the rule: every rule stops at
    `end`, and at most MAX_STEPS occurrences are looked at.
    """
    zone = _zone(appt.tzid)
    length = appt.end - appt.start
    first = appt.start.astimezone(zone)
    if appt.all_day:  # whole days: expand dates, then each day from its local midnight
        dtstart: datetime = datetime.combine(first.date(), time())
        bound = datetime.combine(end.astimezone(zone).date(), time()) + timedelta(days=1)
    else:
        dtstart = first
        bound = end.astimezone(zone)
    lead = start - length
    texts = [t for t in (appt.rrule or "").split("\n") if t.strip()]
    rules: list[Any] = []
    for text in texts:
        problem = rule_problem(text)
        if problem is not None:
            _unreadable(appt, problem)
            rules = []
            break
        begin = dtstart
        if skip_ahead:
            begin = _skip_ahead(text, dtstart, lead if not appt.all_day else lead.astimezone(zone))
        try:
            rules.append(_rule(text, begin, bound, appt.all_day))
        except (ValueError, TypeError, OverflowError) as exc:
            _unreadable(appt, str(exc))
            rules = []
            break
    extra = sorted({_aware(dtstart, zone), *(_aware(r, zone) for r in parse_exdates(appt.rdates))})
    moments = heapq.merge(extra, *((_aware(m, zone) for m in rule) for rule in rules))
    skipped = {ex.astimezone(UTC) for ex in parse_exdates(appt.exdates)}
    skipped_days = {ex.astimezone(zone).date() for ex in parse_exdates(appt.exdates)}
    found: list[tuple[datetime, datetime]] = []
    previous: datetime | None = None
    for steps, s in enumerate(moments):
        if steps >= MAX_STEPS:
            log.warning("series expanded only in part", extra={"appointment_id": appt.id})
            break
        if s >= end:
            break
        if s == previous:
            continue  # a visit two rules (or a rule and an RDATE) both give is one visit
        previous = s
        e = s + length
        if e <= start:
            continue
        if s.astimezone(UTC) in skipped or (appt.all_day and s.date() in skipped_days):
            continue
        found.append((s, e))
    return found


def _aware(moment: datetime | date, zone: ZoneInfo) -> datetime:
    if not isinstance(moment, datetime):
        return datetime.combine(moment, time(), zone)
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)


def visit(series: Appointment, start: datetime, end: datetime | None = None) -> Appointment:
    """A transient copy of series row `series` for its visit at `start` (never added to a session)."""
    columns = {attr.key: getattr(series, attr.key) for attr in inspect(Appointment).column_attrs}
    occurrence = Appointment(**columns)
    occurrence.start, occurrence.end = start, end or start + (series.end - series.start)
    return occurrence


#: What expanding a series needs: no patient fields, so nothing to decrypt.
_EXPAND_COLUMNS = (
    Appointment.id, Appointment.start, Appointment.end, Appointment.tzid, Appointment.all_day,
    Appointment.rrule, Appointment.exdates, Appointment.rdates, Appointment.source_calendar_id,
    Appointment.source_uid,
)  # fmt: skip


def _series_rows(start: datetime, end: datetime, where: tuple[ColumnElement[bool], ...]) -> list[ColumnElement[bool]]:
    return [
        Appointment.rrule.is_not(None), Appointment.rrule != "", Appointment.recurrence_key == "",
        Appointment.start < end, *where,
    ]  # fmt: skip


async def _visits(
    session: AsyncSession, rows: list[Any], start: datetime, end: datetime
) -> list[tuple[Any, datetime, datetime]]:
    """(series row, visit start, visit end) in [start, end), without visits an override replaces."""
    overridden: dict[tuple[int | None, str | None], set[str]] = defaultdict(set)
    future: dict[tuple[int | None, str | None], list[Future]] = defaultdict(list)
    uids = {r.source_uid for r in rows if r.source_uid}
    if uids:
        for cal, uid, key, o_start, o_end in (
            await session.execute(
                select(Appointment.source_calendar_id, Appointment.source_uid, Appointment.recurrence_key,
                       Appointment.start, Appointment.end).where(
                    Appointment.source_uid.in_(uids), Appointment.recurrence_key != ""
                )
            )
        ).tuples():
            if key.endswith(FUTURE):
                future[(cal, uid)].append(Future(key[:-1], o_start, o_end))
            overridden[(cal, uid)].add(key.removesuffix(FUTURE))
        if future:
            return await asyncio.to_thread(_expand_rows, rows, start, end, overridden, future)
    return await asyncio.to_thread(_expand_rows, rows, start, end, overridden)


@dataclass(frozen=True, slots=True)
class Future:
    """An override that holds for its visit and every later one (RANGE=THISANDFUTURE): the key of
    the visit it replaces, and where that visit went."""

    key: str
    start: datetime
    end: datetime

    def instant(self, zone: ZoneInfo) -> datetime:
        """The original start of the visit it replaces (a DATE key: that day's midnight in `zone`)."""
        if len(self.key) == 8:
            return datetime.combine(date.fromisoformat(self.key), time(), zone)
        return datetime.strptime(self.key, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` as a naive wall-clock time in `zone`."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _normal(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` (in `zone`, maybe a wall-clock time a DST change skips) as a real time in `zone`."""
    return moment.astimezone(UTC).astimezone(zone)


def _expand_rows(
    rows: list[Any], start: datetime, end: datetime, overridden: dict[tuple[int | None, str | None], set[str]],
    future: dict[tuple[int | None, str | None], list[Future]] | None = None,
) -> list[tuple[Any, datetime, datetime]]:
    """`_visits`' expansion, run in a worker thread: many series (or one heavy one) never hold up
    the event loop, and past EXPAND_SECONDS the remaining series are left out and logged.

    A THISANDFUTURE override moves every later visit as it moved its own (the same shift of start,
    its length), as RFC 5545 and recurring-ical-events mean it; the latest one before a visit wins."""
    deadline = time_now() + EXPAND_SECONDS
    found: list[tuple[Any, datetime, datetime]] = []
    for n, series in enumerate(rows):
        if time_now() > deadline:
            log.warning("series left out: expansion time limit", extra={"left_out": len(rows) - n})
            break
        key = (series.source_calendar_id, series.source_uid)
        replaced = overridden.get(key, set())
        changes = sorted(((f.instant(_zone(series.tzid)), f) for f in (future or {}).get(key, ())),
                         key=lambda pair: pair[0])
        if not changes:
            for s, e in expand(series, start, end):
                if recurrence_key(s.date() if series.all_day else s, series.all_day) in replaced:
                    continue  # this occurrence was changed: its override row stands for it
                found.append((series, s, e))
            continue
        zone = _zone(series.tzid)
        # The shift and length in the series' wall-clock time: a move of two days keeps 04:00 at
        # 04:00 across a DST change (RFC 5545; recurring-ical-events alike), not 47 or 49 hours.
        moves = [(at, _wall(change.start, zone) - _wall(at, zone), _wall(change.end, zone) - _wall(change.start, zone))
                 for at, change in changes]  # fmt: skip
        reach = max(abs(shift) for _, shift, _ in moves) + timedelta(days=1)  # + any DST offset
        for s, e in expand(series, start - reach, end + reach):
            if recurrence_key(s.date() if series.all_day else s, series.all_day) in replaced:
                continue
            ruling = [(shift, length) for at, shift, length in moves if at <= s]
            if ruling:
                shift, length = ruling[-1]
                moved = s.astimezone(zone) + shift  # aware + timedelta: wall-clock time
                s, e = _normal(moved, zone), _normal(moved + length, zone)
            if s < end and e > start:
                found.append((series, s, e))
    return found


async def occurrences_between(
    session: AsyncSession, start: datetime, end: datetime, *where: ColumnElement[bool]
) -> list[Appointment]:
    """The occurrences in [start, end) of the series rows matching `where`, as transient copies."""
    rows = list((await session.scalars(select(Appointment).where(*_series_rows(start, end, where)))).all())
    return [visit(series, s, e) for series, s, e in await _visits(session, rows, start, end)] if rows else []


def series_rows_select(start: Any, end: Any, *where: ColumnElement[bool]) -> Select[Appointment]:
    """The series rows `occurrences_between` expands, as a statement: built once with bound
    parameters for `start` and `end` by a caller that runs it often (the agenda)."""
    return select(Appointment).where(*_series_rows(start, end, where))


async def occurrences_of(session: AsyncSession, rows_select: Select[Appointment], params: dict[str, Any],
                         start: datetime, end: datetime) -> list[Appointment]:
    """`occurrences_between` with a statement from `series_rows_select` and its parameters."""
    rows = list((await session.scalars(rows_select, params)).all())
    return [visit(series, s, e) for series, s, e in await _visits(session, rows, start, end)] if rows else []


async def visit_starts(
    session: AsyncSession, start: datetime, end: datetime, *where: ColumnElement[bool]
) -> dict[int, list[datetime]]:
    """Series id -> the starts of its visits in [start, end): `occurrences_between` for callers
    that need only when (the reminder sweep), reading no patient field and building no copies."""
    rows = list((await session.execute(select(*_EXPAND_COLUMNS).where(*_series_rows(start, end, where)))).all())
    found: dict[int, list[datetime]] = defaultdict(list)
    for series, s, _ in await _visits(session, rows, start, end) if rows else []:
        found[series.id].append(s)
    return found
