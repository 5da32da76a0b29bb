"""The chat's time grammar, which lives in sync.services.when (the lead intake reads times with it too)."""

from __future__ import annotations

from sync.services.when import (
    DAY_EXAMPLE,
    WHEN_EXAMPLE,
    DayRef,
    TimeRef,
    WhenSpec,
    check_day,
    parse_day,
    parse_when,
    wall_time,
)

__all__ = ["DAY_EXAMPLE", "WHEN_EXAMPLE", "DayRef", "TimeRef", "WhenSpec", "check_day", "parse_day", "parse_when",
           "wall_time"]
