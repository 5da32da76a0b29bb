"""Time zones for iCalendar: TZID resolution (IANA, Windows names, vendor prefixes, VTIMEZONE
blocks) and compact VTIMEZONE generation for what we write.

A TZID that names an IANA zone (directly, through a Windows id, or inside a vendor prefix such as
"/mozilla.org/20050126_1/Europe/Berlin") resolves to that zone, whatever the VTIMEZONE block next
to it says: the IANA rules are newer than any copy of them. Only a custom TZID ("Customized Time
Zone", "(UTC+01:00) Amsterdam, ...") is read from its VTIMEZONE, through the icalendar library.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.kit.ical.contentlines import Component, component_text
from adapters.kit.ical.zone_names import iana_zone
from sync.contract import BadPayload

__all__ = ["ZoneResolver", "iana_zone", "is_utc", "vtimezone_lines"]

log = logging.getLogger("clinicbot.ical")

_UTC_NAMES = frozenset({"UTC", "ETC/UTC", "GMT", "ETC/GMT", "Z", "ZULU", "UNIVERSAL", "ETC/UNIVERSAL"})


def is_utc(tzid: str | None) -> bool:
    """True when a zone name means UTC (or there is none)."""
    return tzid is None or tzid.upper() in _UTC_NAMES


class ZoneResolver:
    """Resolves TZID parameters for one VCALENDAR, with its VTIMEZONE blocks at hand."""

    def __init__(self, calendar: Component | None, default_tz: str | None) -> None:
        self._calendar = calendar
        self._known: dict[str, tuple[tzinfo, str | None]] = {}
        self.default_tzid = default_tz if default_tz and not is_utc(default_tz) else None
        self.default_zone: tzinfo = ZoneInfo(self.default_tzid) if self.default_tzid else UTC

    def resolve(self, tzid: str) -> tuple[tzinfo, str | None]:
        """(tzinfo, IANA name or None) for a TZID parameter value."""
        found = self._known.get(tzid)
        if found is None:
            zone = iana_zone(tzid)
            if zone is not None:
                found = zone, (None if is_utc(zone.key) else zone.key)
            else:
                found = self._from_vtimezone(tzid)
            self._known[tzid] = found
        return found

    def _from_vtimezone(self, tzid: str) -> tuple[tzinfo, str | None]:
        block = self._vtimezone(tzid)
        if block is None:
            log.warning("ical: unknown TZID without VTIMEZONE; using the calendar's default zone")
            return self.default_zone, self.default_tzid
        location = block.first("X-LIC-LOCATION")
        if location is not None and iana_zone(location.value) is not None:
            zone = iana_zone(location.value)
            assert zone is not None
            return zone, zone.key
        return _custom_zone(component_text(block), block.line)

    def _vtimezone(self, tzid: str) -> Component | None:
        if self._calendar is None:
            return None
        for child in self._calendar.children:
            if child.name == "VTIMEZONE":
                prop = child.first("TZID")
                if prop is not None and prop.value.strip().strip('"') == tzid.strip().strip('"'):
                    return child
        return None


Offsets = Callable[[datetime], "timedelta | None"]


@lru_cache(maxsize=64)
def _custom_zone(text: str, line: int) -> tuple[tzinfo, str | None]:
    """(tzinfo, IANA name or None) for a custom VTIMEZONE ("Customized Time Zone", Google's own
    blocks): the IANA zone whose offsets are the same over EQUIVALENT_YEARS (see
    `equivalent_zone`), so a series in it is expanded, stored and written like any other, 09:00
    staying 09:00 across DST; else the block's own rules, read by icalendar, with no name."""
    import icalendar

    try:
        parsed: Any = icalendar.Timezone.from_ical(text)
        zone: tzinfo = parsed.to_tz()
        times, infos = parsed.get_transitions()
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError ... on bad blocks
        raise BadPayload(f"line {line}: unreadable VTIMEZONE ({type(exc).__name__})", line=line) from exc
    offsets: Offsets = _stepwise(times, [info[0] for info in infos]) if times else _offsets_of(zone)
    same = equivalent_zone(offsets)
    if same is None:
        log.warning("ical: a custom VTIMEZONE matches no IANA zone; its series are expanded in UTC")
        return zone, None
    return ZoneInfo(same), same


def _stepwise(times: list[datetime], after: list[timedelta]) -> Offsets:
    """UTC offset at an instant from a zone's transitions (naive UTC times, offset after each)."""
    keys = [t.replace(tzinfo=UTC) for t in times]

    def offset(moment: datetime) -> timedelta | None:
        index = bisect_right(keys, moment) - 1
        return after[index] if index >= 0 else after[0]

    return offset


def _offsets_of(zone: tzinfo) -> Offsets:
    return lambda moment: moment.astimezone(zone).utcoffset()


#: Years over which a custom zone must agree with its IANA equivalent (at noon every day, and to the
#: second at each of its own changes of offset): the span any appointment synced today falls in.
EQUIVALENT_YEARS = (2000, 2037)
_REGIONS = ("Europe", "America", "Asia", "Australia", "Pacific", "Africa", "Atlantic", "Indian", "Etc")


@lru_cache(maxsize=1)
def _signatures() -> dict[tuple[int, ...], list[str]]:
    """IANA zones grouped by their UTC offsets on the 1st and 15th of each month of two years."""
    from zoneinfo import available_timezones

    groups: dict[tuple[int, ...], list[str]] = {}
    for key in sorted(available_timezones()):
        if key.split("/")[0] not in _REGIONS:
            continue  # "CET", "US/Eastern", "posixrules" ...: aliases and legacy names
        try:
            zone = ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
        groups.setdefault(_signature(_offsets_of(zone)), []).append(key)
    return groups


def _signature(offsets: Offsets) -> tuple[int, ...]:
    out = []
    for year in (2026, 2027):
        for month in range(1, 13):
            for day in (1, 15):
                offset = offsets(datetime(year, month, day, 12, tzinfo=UTC))
                out.append(int(offset.total_seconds()) if offset is not None else 0)
    return tuple(out)


def equivalent_zone(offsets: Offsets) -> str | None:
    """The IANA zone with the same UTC offsets as `offsets` over EQUIVALENT_YEARS, preferring
    European, then American ... names (any of equal zones gives the same times)."""
    candidates = _signatures().get(_signature(offsets), [])
    for key in sorted(candidates, key=lambda k: (_REGIONS.index(k.split("/")[0]), k)):
        if _agrees(offsets, ZoneInfo(key)):
            return key
    return None


def _agrees(offsets: Offsets, other: ZoneInfo) -> bool:
    first, last = EQUIVALENT_YEARS
    moment = datetime(first, 1, 1, 12, tzinfo=UTC)
    stop = datetime(last + 1, 1, 1, tzinfo=UTC)
    step, second = timedelta(days=1), timedelta(seconds=1)
    previous = offsets(moment)
    while moment < stop:
        mine = offsets(moment)
        if mine != moment.astimezone(other).utcoffset():
            return False
        if mine != previous and not _same_change(offsets, other, moment - step, moment, second):
            return False
        previous = mine
        moment += step
    return True


def _same_change(offsets: Offsets, other: ZoneInfo, low: datetime, high: datetime, second: timedelta) -> bool:
    """Whether both zones change offset at the same second between `low` and `high`."""
    before = offsets(low)
    while high - low > second:
        middle = low + (high - low) / 2
        if offsets(middle) == before:
            low = middle
        else:
            high = middle
    return (low.astimezone(other).utcoffset(), high.astimezone(other).utcoffset()) == (offsets(low), offsets(high))


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def _transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    """UTC instants in `year` at which the zone's offset changes (to the minute)."""
    found: list[datetime] = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(days=1)
    previous = moment.astimezone(zone).utcoffset()
    while moment < end:
        following = moment + step
        offset = following.astimezone(zone).utcoffset()
        if offset != previous:
            low, high = moment, following
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == previous:
                    low = middle
                else:
                    high = middle
            found.append(high.replace(second=0, microsecond=0))
            previous = offset
        moment = following
    return found


def _yearly_rule(local: datetime) -> tuple[str, date]:
    """An RRULE for 'the n-th (or last) weekday of this month' and its first date in 1970."""
    weekday = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")[local.weekday()]
    next_week = local + timedelta(days=7)
    nth = -1 if next_week.month != local.month else (local.day - 1) // 7 + 1
    rule = f"FREQ=YEARLY;BYMONTH={local.month};BYDAY={nth}{weekday}"
    days = [date(1970, local.month, d) for d in range(1, 32) if _valid(1970, local.month, d)]
    matching = [d for d in days if d.weekday() == local.weekday()]
    return rule, matching[nth - 1] if nth > 0 else matching[-1]


def _valid(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=256)
def vtimezone_lines(tzid: str, year: int) -> tuple[str, ...]:
    """A compact VTIMEZONE for an IANA zone, with yearly rules taken from `year`."""
    zone = ZoneInfo(tzid)
    lines = ["BEGIN:VTIMEZONE", f"TZID:{tzid}", f"X-LIC-LOCATION:{tzid}"]
    changes = _transitions(zone, year)
    if not changes:
        offset = datetime(year, 1, 1, tzinfo=UTC).astimezone(zone).utcoffset() or timedelta(0)
        name = datetime(year, 1, 1, tzinfo=UTC).astimezone(zone).tzname() or tzid
        text = _offset_text(offset)
        lines += [
            "BEGIN:STANDARD",
            "DTSTART:19700101T000000",
            f"TZNAME:{name}",
            f"TZOFFSETFROM:{text}",
            f"TZOFFSETTO:{text}",
            "END:STANDARD",
        ]
    for instant in changes:
        before = (instant - timedelta(minutes=1)).astimezone(zone)
        after = instant.astimezone(zone)
        offset_from = before.utcoffset() or timedelta(0)
        offset_to = after.utcoffset() or timedelta(0)
        kind = "DAYLIGHT" if after.dst() else "STANDARD"
        local = (instant + offset_from).replace(tzinfo=None)
        rule, first = _yearly_rule(local)
        lines += [
            f"BEGIN:{kind}",
            f"DTSTART:{first:%Y%m%d}T{local:%H%M%S}",
            f"RRULE:{rule}",
            f"TZNAME:{after.tzname() or tzid}",
            f"TZOFFSETFROM:{_offset_text(offset_from)}",
            f"TZOFFSETTO:{_offset_text(offset_to)}",
            f"END:{kind}",
        ]
    lines.append("END:VTIMEZONE")
    return tuple(lines)
