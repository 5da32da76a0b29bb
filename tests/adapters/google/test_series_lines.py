"""A series of several RRULEs with RDATEs keeps all of them on its way to Google and back (the mirror
copy of a Zimbra series is the same series)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from adapters.google.mapping import to_event_data, to_google
from sync.contract.items import EventData

BERLIN = ZoneInfo("Europe/Berlin")


def test_every_rule_and_rdate_goes_to_google_and_comes_back() -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=BERLIN)
    event = EventData(uid="z1", summary="x", start=start, end=start + timedelta(minutes=30), tzid="Europe/Berlin",
                      rrule="FREQ=WEEKLY;COUNT=4;BYDAY=MO\nFREQ=MONTHLY;COUNT=3;BYMONTHDAY=20",
                      rdates=(datetime(2026, 1, 22, 9, tzinfo=BERLIN),))
    body = to_google(event)
    assert body["recurrence"] == [
        "RRULE:FREQ=WEEKLY;COUNT=4;BYDAY=MO", "RRULE:FREQ=MONTHLY;COUNT=3;BYMONTHDAY=20",
        "RDATE;TZID=Europe/Berlin:20260122T090000",
    ]
    back = to_event_data({**body, "id": "g1", "iCalUID": "z1", "etag": '"1"'})
    assert back.rrule == event.rrule and back.rdates == event.rdates
