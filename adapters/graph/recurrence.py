"""Graph's `patternedRecurrence` <-> RFC 5545 RRULE text, for the patterns Outlook can hold.

Outlook only stores daily, weekly, (relative) monthly and (relative) yearly patterns with one
interval; anything else (BYHOUR, several BYMONTHDAY values, FREQ=HOURLY ...) cannot be written
and raises `Refused`, so the core writes single occurrences instead.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sync.contract import BadPayload, Refused

__all__ = ["pattern_to_rrule", "rrule_to_pattern"]

_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_ICAL_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_INDEX_BACK = {v: k for k, v in _INDEX.items()}


def _day_to_ical(day: str) -> str:
    try:
        return _ICAL_DAYS[_DAYS.index(day.lower())]
    except ValueError:
        raise BadPayload(f"graph: unknown weekday {day!r} in a recurrence") from None


def _ical_to_day(code: str) -> str:
    try:
        return _DAYS[_ICAL_DAYS.index(code.upper())]
    except ValueError:
        raise Refused(f"graph: Outlook cannot store weekday {code!r}") from None


def pattern_to_rrule(recurrence: dict[str, Any], tz: ZoneInfo) -> str:
    """RRULE text (no "RRULE:" prefix) for a Graph patternedRecurrence."""
    pattern = recurrence.get("pattern") or {}
    rng = recurrence.get("range") or {}
    kind = pattern.get("type")
    parts: list[str] = []
    interval = int(pattern.get("interval") or 1)
    days = [_day_to_ical(d) for d in pattern.get("daysOfWeek") or []]
    if kind == "daily":
        parts.append("FREQ=DAILY")
    elif kind == "weekly":
        parts += ["FREQ=WEEKLY", f"BYDAY={','.join(days)}"]
        first = pattern.get("firstDayOfWeek")
        if first and first.lower() != "monday":
            parts.append(f"WKST={_day_to_ical(first)}")
    elif kind == "absoluteMonthly":
        parts += ["FREQ=MONTHLY", f"BYMONTHDAY={int(pattern['dayOfMonth'])}"]
    elif kind == "relativeMonthly":
        parts += [
            "FREQ=MONTHLY",
            f"BYDAY={','.join(days)}",
            f"BYSETPOS={_INDEX[pattern.get('index') or 'first']}",
        ]
    elif kind == "absoluteYearly":
        parts += [
            "FREQ=YEARLY",
            f"BYMONTH={int(pattern['month'])}",
            f"BYMONTHDAY={int(pattern['dayOfMonth'])}",
        ]
    elif kind == "relativeYearly":
        parts += [
            "FREQ=YEARLY",
            f"BYMONTH={int(pattern['month'])}",
            f"BYDAY={','.join(days)}",
            f"BYSETPOS={_INDEX[pattern.get('index') or 'first']}",
        ]
    else:
        raise BadPayload(f"graph: unknown recurrence pattern {kind!r}")
    if interval != 1:
        parts.append(f"INTERVAL={interval}")
    range_type = rng.get("type")
    if range_type == "numbered":
        parts.append(f"COUNT={int(rng['numberOfOccurrences'])}")
    elif range_type == "endDate":
        last_day = date.fromisoformat(rng["endDate"])
        until = datetime.combine(last_day, time(23, 59, 59), tzinfo=tz).astimezone(UTC)
        parts.append(f"UNTIL={until:%Y%m%dT%H%M%SZ}")
    return ";".join(parts)


def _parse(rrule: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for piece in rrule.removeprefix("RRULE:").split(";"):
        if not piece:
            continue
        key, sep, value = piece.partition("=")
        if not sep:
            raise Refused(f"graph: cannot read RRULE part {piece!r}")
        fields[key.upper()] = value
    return fields


def _until_date(value: str, tz: ZoneInfo) -> date:
    if len(value) == 8:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    stamp = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
    if value.endswith("Z"):
        return stamp.replace(tzinfo=UTC).astimezone(tz).date()
    return stamp.date()


def rrule_to_pattern(rrule: str, start: datetime, tz: ZoneInfo, tz_name: str) -> dict[str, Any]:
    """A Graph patternedRecurrence for RRULE text starting at `start`; Refused when Outlook can't hold it."""
    fields = _parse(rrule)
    supported = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "COUNT", "UNTIL", "WKST"}
    extra = set(fields) - supported
    if extra:
        raise Refused(f"graph: Outlook cannot store RRULE parts {sorted(extra)}")
    freq = fields.get("FREQ")
    interval = int(fields.get("INTERVAL", "1"))
    local_start = start.astimezone(tz)
    byday = [d for d in fields.get("BYDAY", "").split(",") if d]
    pattern: dict[str, Any] = {"interval": interval}
    setpos = fields.get("BYSETPOS")
    if byday and any(len(d) > 2 for d in byday):
        # "2TU" style: an ordinal inside BYDAY; Outlook only holds one ordinal for the whole rule.
        ordinals = {d[:-2] for d in byday}
        if len(ordinals) != 1:
            raise Refused("graph: Outlook cannot mix ordinals in BYDAY")
        setpos = ordinals.pop()
        byday = [d[-2:] for d in byday]
    if freq == "DAILY" and not byday:
        pattern["type"] = "daily"
    elif freq == "WEEKLY" or (freq == "DAILY" and byday):
        pattern["type"] = "weekly"
        days = byday or [_ICAL_DAYS[local_start.weekday()]]
        pattern["daysOfWeek"] = [_ical_to_day(d) for d in days]
        pattern["firstDayOfWeek"] = _ical_to_day(fields.get("WKST", "MO"))
    elif freq in ("MONTHLY", "YEARLY"):
        yearly = freq == "YEARLY"
        if yearly:
            pattern["month"] = int(fields.get("BYMONTH", str(local_start.month)))
        if byday:
            if setpos is None or int(setpos) not in _INDEX_BACK:
                raise Refused("graph: Outlook needs one of first..fourth or last for a relative pattern")
            pattern["type"] = "relativeYearly" if yearly else "relativeMonthly"
            pattern["daysOfWeek"] = [_ical_to_day(d) for d in byday]
            pattern["index"] = _INDEX_BACK[int(setpos)]
        else:
            monthday = fields.get("BYMONTHDAY", str(local_start.day))
            if "," in monthday or int(monthday) < 1:
                raise Refused("graph: Outlook holds one positive day of the month")
            pattern["type"] = "absoluteYearly" if yearly else "absoluteMonthly"
            pattern["dayOfMonth"] = int(monthday)
    else:
        raise Refused(f"graph: Outlook cannot store FREQ={freq}")
    rng: dict[str, Any] = {"startDate": local_start.date().isoformat(), "recurrenceTimeZone": tz_name}
    if "COUNT" in fields:
        rng.update(type="numbered", numberOfOccurrences=int(fields["COUNT"]))
    elif "UNTIL" in fields:
        rng.update(type="endDate", endDate=_until_date(fields["UNTIL"], tz).isoformat())
    else:
        rng["type"] = "noEnd"
    return {"pattern": pattern, "range": rng}
