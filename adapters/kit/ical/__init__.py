"""The shared iCalendar <-> EventData mapping used by the CalDAV and ICS adapters.

- `parse_events(data, default_tz=...)`: every VEVENT of an iCalendar stream as EventData
  (RRULE, EXDATE, RECURRENCE-ID, all-day dates, floating times, VTIMEZONE, Windows zone names,
  TRANSP, STATUS, CATEGORIES, X-CLINICBOT-ID). Malformed input raises BadPayload naming the line.
- `serialize_event(event, overrides)` / `serialize_calendar(events)`: EventData back to text.
- `expand(events, window)`: series to occurrences, for per-occurrence calendars and free/busy.
"""

from adapters.kit.ical.contentlines import Component, Prop, parse_components
from adapters.kit.ical.expand import expand
from adapters.kit.ical.reader import events_from_calendar, parse_events
from adapters.kit.ical.windows_zones import windows_to_iana
from adapters.kit.ical.writer import serialize_calendar, serialize_event
from adapters.kit.ical.zones import iana_zone

__all__ = [
    "Component",
    "Prop",
    "events_from_calendar",
    "expand",
    "iana_zone",
    "parse_components",
    "parse_events",
    "serialize_calendar",
    "serialize_event",
    "windows_to_iana",
]
