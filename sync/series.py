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
import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta
from dateutil.rrule import rrulestr
from sqlalchemy import ColumnElement, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.model import Appointment
from sync.recurrence import recurrence_key

__all__ = [
    "describe", "expand", "is_series", "occurrences_between", "parse_exdates", "refuse_change", "single", "visit",
    "visit_at", "visit_starts",
]  # fmt: skip

log = logging.getLogger("clinicbot.series")

_DATE_UNTIL = re.compile(r"UNTIL=(\d{8})(?=;|$)")
#: Occurrences looked at per series and span at most (a daily series over 30 years; a bad rule).
MAX_STEPS = 12_000


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
_BYDAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")


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
    parts = dict(p.partition("=")[::2] for p in (appt.rrule or "").upper().removeprefix("RRULE:").split(";"))
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


def _skip_ahead(rrule: str, dtstart: datetime, lead: datetime) -> datetime:
    """`dtstart` moved forward by whole periods of the rule, to at most two periods before `lead`,
    where that gives the same occurrences after it: no COUNT, and a period that is a fixed number
    of days, or of months from a day every month has. Saves walking a years-old series visit by
    visit on every look (the reminder sweep looks at every series each minute)."""
    parts = dict(p.partition("=")[::2] for p in rrule.upper().removeprefix("RRULE:").split(";"))
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
    freq = parts.get("FREQ")
    if freq in ("DAILY", "WEEKLY"):
        step = timedelta(days=interval * (7 if freq == "WEEKLY" else 1))
        periods = (target - wall) // step - 1
        moved = wall + step * periods if periods > 0 else wall
    elif freq in ("MONTHLY", "YEARLY") and wall.day <= 28:
        months = interval * (12 if freq == "YEARLY" else 1)
        periods = ((target.year - wall.year) * 12 + target.month - wall.month) // months - 1
        moved = wall + relativedelta(months=months * periods) if periods > 0 else wall
    else:
        return dtstart
    return moved.replace(tzinfo=dtstart.tzinfo)


def expand(
    appt: Appointment, start: datetime, end: datetime, *, skip_ahead: bool = True
) -> list[tuple[datetime, datetime]]:
    """(start, end) of each occurrence of series `appt` overlapping [start, end), EXDATEs left out."""
    zone = _zone(appt.tzid)
    length = appt.end - appt.start
    first = appt.start.astimezone(zone)
    if appt.all_day:  # whole days: expand dates, then each day from its local midnight
        dtstart: datetime = datetime.combine(first.date(), time())
    else:
        dtstart = first
    if skip_ahead:
        lead = start - length
        dtstart = _skip_ahead(appt.rrule or "", dtstart, lead if not appt.all_day else lead.astimezone(zone))
    try:
        rule: Any = rrulestr(appt.rrule or "", dtstart=dtstart, forceset=True, ignoretz=appt.all_day)
    except (ValueError, TypeError) as exc:
        if appt.all_day:
            log.warning("unreadable RRULE", extra={"appointment_id": appt.id, "error": str(exc)[:80]})
            return []
        # e.g. a date-only UNTIL on a timed series (RFC 5545 says not to; some send it): read the
        # rule in the series' wall-clock time, that UNTIL as the end of its day
        text = _DATE_UNTIL.sub(r"UNTIL=\1T235959", appt.rrule or "")
        try:
            rule = rrulestr(text, dtstart=dtstart.replace(tzinfo=None), forceset=True, ignoretz=True)
        except (ValueError, TypeError) as exc2:
            log.warning("unreadable RRULE", extra={"appointment_id": appt.id, "error": str(exc2)[:80]})
            return []
    skipped = {ex.astimezone(UTC) for ex in parse_exdates(appt.exdates)}
    skipped_days = {ex.astimezone(zone).date() for ex in parse_exdates(appt.exdates)}
    found: list[tuple[datetime, datetime]] = []
    for steps, moment in enumerate(rule):
        if steps >= MAX_STEPS:
            log.warning("series expanded only in part", extra={"appointment_id": appt.id})
            break
        s = _aware(moment, zone)
        if s >= end:
            break
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
    Appointment.rrule, Appointment.exdates, Appointment.source_calendar_id, Appointment.source_uid,
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
    uids = {r.source_uid for r in rows if r.source_uid}
    if uids:
        for cal, uid, key in (
            await session.execute(
                select(Appointment.source_calendar_id, Appointment.source_uid, Appointment.recurrence_key).where(
                    Appointment.source_uid.in_(uids), Appointment.recurrence_key != ""
                )
            )
        ).tuples():
            overridden[(cal, uid)].add(key)
    found: list[tuple[Any, datetime, datetime]] = []
    for n, series in enumerate(rows, 1):
        if n % 64 == 0:
            await asyncio.sleep(0)  # many series: let requests in between (the sweep runs every minute)
        replaced = overridden.get((series.source_calendar_id, series.source_uid), set())
        for s, e in expand(series, start, end):
            if recurrence_key(s.date() if series.all_day else s, series.all_day) in replaced:
                continue  # this occurrence was changed: its override row stands for it
            found.append((series, s, e))
    return found


async def occurrences_between(
    session: AsyncSession, start: datetime, end: datetime, *where: ColumnElement[bool]
) -> list[Appointment]:
    """The occurrences in [start, end) of the series rows matching `where`, as transient copies."""
    rows = list((await session.scalars(select(Appointment).where(*_series_rows(start, end, where)))).all())
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
