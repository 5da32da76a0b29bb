"""Reminder preferences: built-in defaults, the practice's defaults, and each practitioner's own.

Stored as JSON: `Practice.settings["reminders"]` holds practice defaults and
`Practitioner.reminder_prefs` the practitioner's overrides, both with the keys of `ReminderPrefs`
(times as "HH:MM", days as 0=Monday .. 6=Sunday). A key a practitioner has not set falls back to
the practice, then to the built-in default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sync.store.model import Practice, Practitioner

__all__ = [
    "DAY_NAMES",
    "MAX_OFFSETS",
    "MAX_OFFSET_MINUTES",
    "ReminderPrefs",
    "effective_prefs",
    "format_minutes",
    "practitioner_zone",
]

MAX_OFFSET_MINUTES = 48 * 60
MAX_OFFSETS = 4
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hhmm(value: str | None) -> time | None:
    if not value:
        return None
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True, slots=True)
class ReminderPrefs:
    """The effective settings for one practitioner."""

    enabled: bool = True
    offsets_minutes: tuple[int, ...] = (1440, 60)
    agenda_time: str | None = "07:30"
    quiet_start: str | None = "21:00"
    quiet_end: str | None = "07:00"
    working_days: tuple[int, ...] = (0, 1, 2, 3, 4)
    followups: bool = True

    @property
    def agenda_at(self) -> time | None:
        return _hhmm(self.agenda_time)

    @property
    def quiet(self) -> tuple[time, time] | None:
        start, end = _hhmm(self.quiet_start), _hhmm(self.quiet_end)
        if start is None or end is None or start == end:
            return None
        return start, end

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["offsets_minutes"] = list(self.offsets_minutes)
        doc["working_days"] = list(self.working_days)
        return doc

    def describe(self) -> str:
        """One line a practitioner can read back, e.g. in reply to `remind`."""
        if not self.enabled:
            return "reminders are off (`remind on` turns them back on)"
        parts = [
            "reminders "
            + (
                ", ".join(format_minutes(m) for m in self.offsets_minutes) + " before"
                if self.offsets_minutes
                else "none before appointments"
            ),
            f"agenda at {self.agenda_time} on {_days(self.working_days)}"
            if self.agenda_time
            else "no agenda",
            f"quiet {self.quiet_start}-{self.quiet_end}" if self.quiet else "no quiet hours",
            "follow-ups on" if self.followups else "follow-ups off",
        ]
        return "; ".join(parts)


def _days(days: tuple[int, ...]) -> str:
    if days == (0, 1, 2, 3, 4):
        return "working days (mon-fri)"
    return ",".join(DAY_NAMES[d] for d in days) or "no days"


def format_minutes(minutes: int) -> str:
    """1440 -> '24h', 90 -> '90m', 60 -> '1h'."""
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _coerce(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep only known keys with usable values (stored JSON may be hand-edited or old)."""
    out: dict[str, Any] = {}
    for key in ReminderPrefs.__dataclass_fields__:
        if key not in raw:
            continue
        value = raw[key]
        if key in ("offsets_minutes", "working_days") and isinstance(value, list):
            out[key] = tuple(sorted({int(v) for v in value}, reverse=key == "offsets_minutes"))
        elif key in ("enabled", "followups") and isinstance(value, bool):
            out[key] = value
        elif key in ("agenda_time", "quiet_start", "quiet_end") and (value is None or isinstance(value, str)):
            try:
                _hhmm(value)
            except ValueError:
                continue
            out[key] = value
    return out


def effective_prefs(practitioner: Practitioner, practice: Practice | None = None) -> ReminderPrefs:
    """Built-in defaults, overlaid by the practice's defaults, overlaid by the practitioner's."""
    values: dict[str, Any] = {}
    if practice is not None:
        values.update(_coerce(dict((practice.settings or {}).get("reminders") or {})))
    values.update(_coerce(dict(practitioner.reminder_prefs or {})))
    return ReminderPrefs(**values)


def practitioner_zone(practitioner: Practitioner) -> ZoneInfo:
    """The practitioner's zone; an unknown stored zone falls back to UTC rather than failing a send."""
    try:
        return ZoneInfo(practitioner.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
