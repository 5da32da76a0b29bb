"""The `remind ...` chat command: parse, validate, store, replan. Platform-free.

    remind                      show the current settings
    remind 24h 1h before        reminders before each appointment (at most 4, each 5m..48h)
    remind off | remind on      the off switch
    remind agenda 07:30         daily agenda time (`remind agenda off` to stop it)
    remind days mon-fri         the days the agenda comes (mon,wed,fri / weekdays / all)
    remind quiet 20:00-07:00    quiet hours (`remind quiet off`)
    remind followups off        no follow-up DM after appointments
    remind tz Europe/Berlin     the practitioner's time zone
    remind reset                back to the practice's defaults

Input is validated completely before anything is stored, so a bad command changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from sync.notify.reminders.planner import replan_practitioner
from sync.notify.reminders.prefs import DAY_NAMES, MAX_OFFSET_MINUTES, MAX_OFFSETS, effective_prefs, format_minutes
from sync.runtime.core import Core
from sync.services.errors import Denied
from sync.store import audit
from sync.store.model import Practice, Practitioner, utcnow

__all__ = ["EXAMPLES", "RemindError", "apply_reminder_command", "parse_reminder_command", "set_reminders"]

EXAMPLES = (
    "`remind 24h 1h before`, `remind off`, `remind agenda 07:30`, `remind quiet 20:00-07:00`, "
    "`remind tz Europe/Berlin`"
)
MIN_OFFSET_MINUTES = 5
# ASCII digits only: \d also matches other scripts' digits ("٢٤h"), which int() would read.
_OFFSET = re.compile(r"^([0-9]{1,4})(m|min|mins|h|hr|hrs|d|day|days)$")
_TIME = re.compile(r"^([0-9]{1,2}):([0-9]{2})$")
_UNIT_MINUTES = {
    "m": 1,
    "min": 1,
    "mins": 1,
    "h": 60,
    "hr": 60,
    "hrs": 60,
    "d": 1440,
    "day": 1440,
    "days": 1440,
}


class RemindError(ValueError):
    """Bad `remind` input; the message says what was wrong and gives an example."""


#: A parsed change: ("prefs", {key: value}) | ("zone", name) | ("reset", None) | ("show", None)
Change = tuple[str, Any]


def _time(text: str, what: str) -> str:
    m = _TIME.match(text)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise RemindError(f"`{text}` is not a time for {what}; use HH:MM on a 24-hour clock, e.g. 07:30")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def _offsets(words: list[str]) -> list[int]:
    if words and words[-1] == "before":
        words = words[:-1]
    minutes: list[int] = []
    for word in words:
        m = _OFFSET.match(word)
        if not m:
            raise RemindError(
                f"`{word}` is not a reminder time; write it like 24h, 90m or 1d, e.g. `remind 24h 1h before`"
            )
        value = int(m.group(1)) * _UNIT_MINUTES[m.group(2)]
        if value > MAX_OFFSET_MINUTES:
            raise RemindError(
                f"reminders can be at most {format_minutes(MAX_OFFSET_MINUTES)} before an "
                f"appointment (you asked for {word}); e.g. `remind 24h 1h before`"
            )
        if value < MIN_OFFSET_MINUTES:
            raise RemindError(
                f"reminders must be at least {MIN_OFFSET_MINUTES}m before an appointment "
                f"(you asked for {word})"
            )
        minutes.append(value)
    unique = sorted(set(minutes), reverse=True)
    if len(unique) > MAX_OFFSETS:
        raise RemindError(f"at most {MAX_OFFSETS} reminders per appointment; e.g. `remind 24h 1h before`")
    return unique


def _days(spec: str) -> list[int]:
    spec = spec.replace(" ", "")
    if spec in ("weekdays", "workdays", "working"):
        return [0, 1, 2, 3, 4]
    if spec in ("all", "daily", "everyday"):
        return list(range(7))
    days: set[int] = set()
    for part in spec.split(","):
        ends = part.split("-")
        if len(ends) > 2 or any(e[:3] not in DAY_NAMES for e in ends):
            raise RemindError(
                f"`{part}` is not a day or range of days; e.g. `remind days mon-fri` or "
                "`remind days mon,wed,fri`"
            )
        first, last = DAY_NAMES.index(ends[0][:3]), DAY_NAMES.index(ends[-1][:3])
        span = range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)]
        days.update(span)
    return sorted(days)


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RemindError(
            f"unknown time zone `{name}`; use an IANA name such as Europe/Berlin or America/New_York"
        ) from None
    return name


def _on_off(word: str, what: str) -> bool:
    if word in ("on", "yes"):
        return True
    if word in ("off", "no", "none"):
        return False
    raise RemindError(f"`remind {what}` takes on or off")


def parse_reminder_command(text: str) -> Change:
    """Parse the words after `remind` into one change; raise RemindError on anything unclear."""
    raw = text.strip().split()
    if raw and raw[0].lstrip("/").lower() == "remind":
        raw = raw[1:]
    words = [w.lower().strip(",") for w in raw]
    words = [w for w in words if w]
    if not words or words == ["show"] or words == ["status"]:
        return ("show", None)
    head, rest = words[0], words[1:]
    if words in (["on"], ["off"]):
        return ("prefs", {"enabled": head == "on"})
    if words == ["reset"]:
        return ("reset", None)
    if head in ("tz", "zone", "timezone"):
        if len(rest) != 1:
            raise RemindError("`remind tz` takes one IANA zone name, e.g. `remind tz Europe/Berlin`")
        return ("zone", _zone(raw[-1].strip(",")))
    if head == "agenda":
        if len(rest) != 1:
            raise RemindError("`remind agenda` takes a time or off, e.g. `remind agenda 07:30`")
        if rest[0] in ("off", "none"):
            return ("prefs", {"agenda_time": None})
        if rest[0] == "on":
            return ("prefs", {"agenda_time": "07:30"})
        return ("prefs", {"agenda_time": _time(rest[0], "the agenda")})
    if head == "quiet":
        if rest in (["off"], ["none"]):
            return ("prefs", {"quiet_start": None, "quiet_end": None})
        spec = "".join(rest).replace("to", "-")
        ends = spec.split("-")
        if len(ends) != 2:
            raise RemindError("`remind quiet` takes a range or off, e.g. `remind quiet 20:00-07:00`")
        start, end = _time(ends[0], "quiet hours"), _time(ends[1], "quiet hours")
        if start == end:
            raise RemindError(
                "quiet hours must start and end at different times, e.g. `remind quiet 20:00-07:00`"
            )
        return ("prefs", {"quiet_start": start, "quiet_end": end})
    if head == "days":
        if not rest:
            raise RemindError("`remind days` takes days, e.g. `remind days mon-fri`")
        return ("prefs", {"working_days": _days(",".join(rest))})
    if head in ("followups", "followup", "follow-ups", "follow-up"):
        if len(rest) != 1:
            raise RemindError("`remind followups` takes on or off")
        return ("prefs", {"followups": _on_off(rest[0], "followups")})
    if head[:1].isdigit():
        return ("prefs", {"offsets_minutes": _offsets(words)})
    if words in (["none"], ["none", "before"]):
        return ("prefs", {"offsets_minutes": []})
    raise RemindError(f"I don't understand `remind {' '.join(raw)}`; try {EXAMPLES}")


async def apply_reminder_command(
    session: AsyncSession,
    practitioner: Practitioner,
    text: str,
    *,
    actor: str | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> str:
    """Apply one `remind ...` command for `practitioner`; return a one-line summary of the result."""
    kind, value = parse_reminder_command(text)
    practice = await session.get(Practice, practitioner.practice_id)
    if kind == "show":
        return f"{effective_prefs(practitioner, practice).describe()}; time zone {practitioner.timezone}"
    before: dict[str, Any] = {
        "prefs": dict(practitioner.reminder_prefs or {}),
        "timezone": practitioner.timezone,
    }
    if kind == "zone":
        practitioner.timezone = value
    elif kind == "reset":
        practitioner.reminder_prefs = {}
    else:
        # A new dict, so SQLAlchemy sees the JSON column change.
        practitioner.reminder_prefs = {**(practitioner.reminder_prefs or {}), **value}
    after: dict[str, Any] = {"prefs": dict(practitioner.reminder_prefs), "timezone": practitioner.timezone}
    await session.flush()
    await audit.record(
        session,
        actor=actor or f"practitioner:{practitioner.id}",
        action="reminders.settings",
        practice_id=practitioner.practice_id,
        before=before,
        after=after,
        details={"practitioner_id": practitioner.id},
    )
    await replan_practitioner(session, practitioner.id, clock())
    prefs = effective_prefs(practitioner, practice)
    if kind == "zone":
        return f"time zone set to {practitioner.timezone}; {prefs.describe()}"
    return prefs.describe()


async def set_reminders(core: Core, practice_id: int, practitioner_id: int, text: str, *, actor: str) -> str:
    """`apply_reminder_command` for one practitioner of one practice, in a transaction of its own
    (what chat's `remind ...` calls); Denied when the practitioner is gone or in another practice."""
    async with core.store.session() as session:
        person = await session.get(Practitioner, practitioner_id)
        if person is None or person.practice_id != practice_id:
            raise Denied("your practitioner record is gone; ask an admin to link you again")
        return await apply_reminder_command(session, person, text, actor=actor, clock=core.clock)
