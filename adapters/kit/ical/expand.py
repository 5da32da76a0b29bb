"""Series -> occurrences, for calendars that hold one item per occurrence and for free/busy.

Expansion is recurring-ical-events' job (RRULE, EXDATE, RECURRENCE-ID overrides, DST); this
module only groups series by UID, hands each group over, and reads the occurrences back through
the same reader as everything else, so an occurrence carries exactly the fields its source had.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import timedelta

from adapters.kit.ical.contentlines import parse_components
from adapters.kit.ical.reader import events_from_calendar
from adapters.kit.ical.writer import serialize_calendar
from sync.contract import BadPayload
from sync.contract.items import EventData, Window

__all__ = ["expand", "expand_off_loop"]

log = logging.getLogger("clinicbot.ical")

_STEP = {
    "SECONDLY": timedelta(seconds=1), "MINUTELY": timedelta(minutes=1), "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1), "WEEKLY": timedelta(weeks=1),
}  # fmt: skip
#: Periods of a rule walked at most before the window (a COUNT cannot be skipped: it counts from DTSTART).
MAX_PERIODS = 200_000


def _bounded(master: EventData, window: Window) -> EventData | None:
    """`master` with its DTSTART moved forward by whole periods of its rules to just before
    `window`, which gives the same visits there when no rule has a COUNT: recurring-ical-events
    otherwise walks an hourly series begun in 1900 period by period (seconds), or a secondly one
    for ever. None when a rule with COUNT would need more than MAX_PERIODS periods.
    The moved DTSTART lies before the window, so whether the rule gives it does not matter."""
    rules = [dict(p.partition("=")[::2] for p in text.upper().split(";")) for text in (master.rrule or "").split("\n")]
    zone = master.start.tzinfo
    wall = master.start.replace(tzinfo=None)
    target = (window.start - (master.end - master.start)).astimezone(zone).replace(tzinfo=None)
    if target <= wall:
        return master
    steps: list[timedelta] = []
    for parts in rules:
        step = _STEP.get(parts.get("FREQ", ""))
        try:
            interval = max(1, int(parts.get("INTERVAL") or 1))
        except ValueError:
            return master
        if step is None:
            return master  # MONTHLY, YEARLY: a few thousand periods since the year 1000 at most
        if "COUNT" in parts:
            return None if (target - wall) // step > MAX_PERIODS else master
        steps.append(step * interval)
    if len(steps) != 1:
        return master if all(s >= timedelta(days=1) for s in steps) else None
    periods = (target - wall) // steps[0] - 1
    if periods <= 0:
        return master
    moved = (wall + steps[0] * periods).replace(tzinfo=zone)
    return master.with_changes(start=moved, end=moved + (master.end - master.start))


#: How long one calendar's free/busy expansion may take before it is refused.
EXPAND_SECONDS = 30.0


async def expand_off_loop(events: list[EventData], window: Window) -> list[EventData]:
    """`expand` in a worker thread, so a calendar of many series never holds up the event loop
    (Slack wants its ack within 3 s); BadPayload past EXPAND_SECONDS."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(expand, events, window), EXPAND_SECONDS)
    except TimeoutError:
        raise BadPayload(f"expanding the calendar's series took longer than {EXPAND_SECONDS:.0f} s") from None


def expand(events: Iterable[EventData], window: Window) -> list[EventData]:
    """Single events overlapping `window`, with every series replaced by its occurrences there.

    Each occurrence has `rrule` cleared, no exdates, and `recurrence_id` set to its original
    start. Overrides (items with a recurrence_id) take the place of the occurrence they change.
    Results are sorted by start.
    """
    import icalendar
    import recurring_ical_events

    singles: list[EventData] = []
    series: dict[str, list[EventData]] = {}
    for event in events:
        if event.rrule:
            series.setdefault(event.uid, []).insert(0, event)
        elif event.recurrence_id is not None:
            series.setdefault(event.uid, []).append(event)
        elif window.overlaps(event.start, event.end) or (
            event.start == event.end and window.start <= event.start < window.end
        ):
            singles.append(event)
    out = list(singles)
    for uid, group in series.items():
        master = group[0]
        if not master.rrule:
            # Overrides whose master is absent are plain moved occurrences.
            out.extend(e for e in group if window.overlaps(e.start, e.end))
            continue
        default_tz = master.tzid if master.all_day else None
        bounded = _bounded(master, window)
        if bounded is None:  # too much work for what it can show: its first visit stands for it
            log.warning("ical: a series would take too long to expand; only its first visit is shown")
            out.extend(e for e in group[:1] if window.overlaps(e.start, e.end))
            continue
        group[0] = bounded
        text = serialize_calendar(group, timezones=False)
        try:
            calendar = icalendar.Calendar.from_ical(text)
            occurrences = recurring_ical_events.of(calendar).between(window.start, window.end)
            rendered = [occurrence.to_ical().decode() for occurrence in occurrences]
        except Exception as exc:  # the library raises many types on bad rules
            raise BadPayload(f"cannot expand the series {uid!r}: {type(exc).__name__}") from exc
        for chunk in rendered:
            wrapped = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{chunk.strip()}\r\nEND:VCALENDAR\r\n"
            for occurrence in events_from_calendar(parse_components(wrapped)[0], default_tz=default_tz):
                out.append(occurrence.with_changes(rrule=None, exdates=()))
    out.sort(key=lambda e: (e.start, e.uid))
    return out
