"""When reminders, follow-ups and agendas fire: pure functions of times, zones and preferences.

The DST rule. An offset that is a whole number of days ("24h", "48h") is counted in the
practitioner's local wall time: the 24 h reminder of a 09:00 appointment fires at 09:00 local
time on the day before, even when a DST change lies in between (so it is 23 or 25 real hours).
Any other offset ("1h", "90m") is counted in real elapsed time. A wall time that does not exist
(the hour skipped in spring) resolves forward, as zoneinfo does with fold=0; an ambiguous one
(the hour repeated in autumn) resolves to its first occurrence.

Quiet hours. A reminder that would fire inside the practitioner's quiet hours moves to the end
of them when that is still before the appointment starts, otherwise to one minute before they
begin (so it fires early rather than never). Follow-ups move to the end of the quiet hours. Agendas fire at
the time the practitioner chose.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["agenda_fire_time", "in_quiet", "offset_fire_time", "shift_out_of_quiet"]

DAY_MINUTES = 24 * 60


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive local wall time in `zone` to UTC (fold=0: gaps resolve forward, folds to the first)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def offset_fire_time(start: datetime, offset_minutes: int, zone: ZoneInfo) -> datetime:
    """The UTC time of the reminder `offset_minutes` before `start`, by the DST rule above."""
    if offset_minutes % DAY_MINUTES == 0:
        local = start.astimezone(zone).replace(tzinfo=None)
        return _wall_to_utc(local - timedelta(days=offset_minutes // DAY_MINUTES), zone)
    # Subtract in UTC: aware arithmetic within one zone would count wall time, not elapsed time.
    return start.astimezone(UTC) - timedelta(minutes=offset_minutes)


def in_quiet(moment: datetime, zone: ZoneInfo, quiet: tuple[time, time] | None) -> bool:
    """Whether `moment` falls inside the daily quiet window [start, end) in local time."""
    if quiet is None:
        return False
    start, end = quiet
    t = moment.astimezone(zone).time().replace(tzinfo=None)
    if start <= end:
        return start <= t < end
    return t >= start or t < end


def _quiet_bounds(moment: datetime, zone: ZoneInfo, quiet: tuple[time, time]) -> tuple[datetime, datetime]:
    """The (start, end) in UTC of the quiet window that contains `moment`."""
    start, end = quiet
    local = moment.astimezone(zone)
    day = local.date()
    if start <= end:
        begins_on = ends_on = day
    elif local.time().replace(tzinfo=None) >= start:
        begins_on, ends_on = day, day + timedelta(days=1)
    else:
        begins_on, ends_on = day - timedelta(days=1), day
    return (
        _wall_to_utc(datetime.combine(begins_on, start), zone),
        _wall_to_utc(datetime.combine(ends_on, end), zone),
    )


def shift_out_of_quiet(
    fire_at: datetime, zone: ZoneInfo, quiet: tuple[time, time] | None, deadline: datetime | None
) -> datetime:
    """Move `fire_at` out of quiet hours: to their end if before `deadline`, else just before their start."""
    if quiet is None or not in_quiet(fire_at, zone, quiet):
        return fire_at
    begins, ends = _quiet_bounds(fire_at, zone, quiet)
    if deadline is None or ends < deadline:
        return ends
    return begins - timedelta(minutes=1)


def agenda_fire_time(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC time of the agenda for local `day` at local time `at`."""
    return _wall_to_utc(datetime.combine(day, at), zone)
