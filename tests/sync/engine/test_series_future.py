"""RECURRENCE-ID;RANGE=THISANDFUTURE moves later visits by the same shift in the series' wall-clock
time (RFC 5545), also across a DST change: on the agenda path (sync.engine.series) and free/busy's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.kit.ical import expand as ical_expand
from adapters.kit.ical import parse_events
from sync.contract.items import Window
from sync.engine.apply import event_fields
from sync.engine.recurrence import FUTURE, override_key
from sync.engine.series import Future, _expand_rows
from sync.store.model import Appointment

SPAN = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 10, tzinfo=UTC))
ZONE = [  # Outlook's "Customized Time Zone": the EU rules at +01:00
    "BEGIN:VTIMEZONE", "TZID:Customized Time Zone",
    "BEGIN:STANDARD", "DTSTART:16011028T030000", "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10",
    "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "END:STANDARD",
    "BEGIN:DAYLIGHT", "DTSTART:16010325T020000", "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3",
    "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200", "END:DAYLIGHT", "END:VTIMEZONE",
]  # fmt: skip
TZ = "TZID=Customized Time Zone"
# Daily at 04:00; the visit of Fri 27 March moves to Sun 29 March 04:00 (the DST change's day),
# this and every later one: two days later each, still at 04:00 local (02:00 UTC from then on).
TEXT = "\r\n".join([
    "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", *ZONE,
    "BEGIN:VEVENT", "UID:s", "DTSTAMP:20260101T000000Z", "SUMMARY:visit",
    f"DTSTART;{TZ}:20260321T040000", f"DTEND;{TZ}:20260321T041500", "RRULE:FREQ=DAILY;COUNT=10", "END:VEVENT",
    "BEGIN:VEVENT", "UID:s", "DTSTAMP:20260101T000000Z", "SUMMARY:moved",
    f"RECURRENCE-ID;RANGE=THISANDFUTURE;{TZ}:20260327T040000",
    f"DTSTART;{TZ}:20260329T040000", f"DTEND;{TZ}:20260329T041500", "END:VEVENT",
    "END:VCALENDAR",
]) + "\r\n"  # fmt: skip


def _expected() -> list[datetime]:
    before = [datetime(2026, 3, day, 3, tzinfo=UTC) for day in range(21, 27)]  # CET: 04:00 is 03:00 UTC
    after = [datetime(2026, 3, 29, 2, tzinfo=UTC), datetime(2026, 3, 30, 2, tzinfo=UTC),
             datetime(2026, 3, 31, 2, tzinfo=UTC), datetime(2026, 4, 1, 2, tzinfo=UTC)]  # fmt: skip
    return before + after


def test_the_agenda_moves_later_visits_in_wall_clock_time_across_dst() -> None:
    events = parse_events(TEXT)
    [master] = [e for e in events if e.recurrence_id is None]
    [moved] = [e for e in events if e.recurrence_id is not None]
    row: Any = Appointment(id=1, source_calendar_id=1, source_uid="s", recurrence_key="", **event_fields(master))
    key = override_key(moved)
    assert key.endswith(FUTURE)
    found = _expand_rows([row], SPAN.start, SPAN.end, {(1, "s"): {key[:-1]}},
                         {(1, "s"): [Future(key[:-1], moved.start, moved.end)]})
    starts = sorted([s.astimezone(UTC) for _, s, _ in found] + [moved.start.astimezone(UTC)])
    assert starts == _expected()
    assert all(e - s == (moved.end - moved.start) for _, s, e in found)


def test_free_busy_moves_later_visits_in_wall_clock_time_across_dst() -> None:
    starts = [e.start.astimezone(UTC) for e in ical_expand(parse_events(TEXT), SPAN)]
    assert starts == _expected()
