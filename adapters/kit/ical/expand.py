"""Series -> occurrences, for calendars that hold one item per occurrence and for free/busy.

Expansion is recurring-ical-events' job (RRULE, EXDATE, RECURRENCE-ID overrides, DST); this
module only groups series by UID, hands each group over, and reads the occurrences back through
the same reader as everything else, so an occurrence carries exactly the fields its source had.
"""

from __future__ import annotations

from collections.abc import Iterable

from sync.contract import BadPayload
from adapters.kit.ical.contentlines import parse_components
from adapters.kit.ical.reader import events_from_calendar
from adapters.kit.ical.writer import serialize_calendar
from sync.contract.items import EventData, Window

__all__ = ["expand"]


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
