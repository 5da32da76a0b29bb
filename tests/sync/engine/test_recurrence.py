"""Series: kept as series where calendars hold them, expanded per occurrence where they do not;
EXDATEs, RECURRENCE-ID overrides, all-day events and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sync.contract.items import EventData, RemoteItem, Window
from sync.engine.recurrence import expand_items, occurrences, recurrence_key
from sync.engine.run import sync_connection
from sync.runtime.core import Core
from tests.sync.helpers import appointments, make_clinic

LONDON = ZoneInfo("Europe/London")
WINDOW = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 30, tzinfo=UTC))


def weekly(uid: str = "s1", **kw: object) -> EventData:
    start = datetime(2026, 3, 20, 9, 0, tzinfo=LONDON)  # the UK moves to BST on 29 March 2026
    return EventData(uid=uid, summary="Physio", start=start, end=start + timedelta(minutes=45), tzid="Europe/London",
                     rrule="FREQ=WEEKLY;COUNT=4", **kw)  # type: ignore[arg-type]


def test_expansion_keeps_wall_clock_time_across_dst() -> None:
    occ = expand_items([RemoteItem("s1", '"1"', weekly())], WINDOW)
    assert [o.event.start.astimezone(LONDON).hour for o in occ] == [9, 9, 9, 9]
    assert [o.event.start.astimezone(UTC).hour for o in occ] == [9, 9, 8, 8]
    assert all(o.event.rrule is None and o.series_remote_id == "s1" for o in occ)
    assert len({o.recurrence_key for o in occ}) == 4


def test_exdate_and_override() -> None:
    master = weekly(exdates=(datetime(2026, 3, 27, 9, 0, tzinfo=LONDON),))
    rid = datetime(2026, 4, 3, 9, 0, tzinfo=LONDON)
    override = EventData(uid="s1", summary="Physio (moved)", start=rid + timedelta(hours=5),
                         end=rid + timedelta(hours=6), tzid="Europe/London", recurrence_id=rid)
    occ = expand_items([RemoteItem("s1", '"1"', master), RemoteItem("s1-o", '"2"', override)], WINDOW)
    assert len(occ) == 3
    moved = [o for o in occ if o.recurrence_key == recurrence_key(rid)]
    assert moved[0].event.summary == "Physio (moved)" and moved[0].remote_id == "s1-o"
    assert moved[0].event.start == rid + timedelta(hours=5)


class InstanceIds:
    """A provider whose occurrences have ids of their own (sync.contract.OccurrenceIds), Google-style."""

    def occurrence_id(self, series_remote_id: str, occurrence: EventData) -> str:
        assert occurrence.recurrence_id is not None
        return f"{series_remote_id}_{occurrence.recurrence_id.astimezone(UTC):%Y%m%dT%H%M%SZ}"

    def series_id(self, remote_id: str) -> str | None:
        return remote_id.rpartition("_")[0] or None


def test_occurrences_are_named_by_their_own_ids_where_the_provider_gives_them() -> None:
    rid = datetime(2026, 4, 3, 9, 0, tzinfo=LONDON)
    override = EventData(uid="s1", summary="Physio (moved)", start=rid + timedelta(hours=5),
                         end=rid + timedelta(hours=6), tzid="Europe/London", recurrence_id=rid)
    items = [RemoteItem("s1", '"1"', weekly()), RemoteItem("s1_20260403T080000Z", '"2"', override)]
    named = occurrences(items, WINDOW, InstanceIds())
    assert [o.remote_id for o in named] == ["s1_20260320T090000Z", "s1_20260327T090000Z",
                                            "s1_20260403T080000Z", "s1_20260410T080000Z"]
    assert all(o.series_remote_id == "s1" for o in named)
    # Without ids of their own (CalDAV, ICS) every occurrence keeps the series' id.
    assert {o.remote_id for o in occurrences(items, WINDOW)} == {"s1", "s1_20260403T080000Z"}
    single = RemoteItem("e1", '"3"', EventData(uid="e1", summary="Lunch", start=rid, end=rid + timedelta(hours=1)))
    assert [o.remote_id for o in occurrences([single], WINDOW, InstanceIds())] == ["e1"]


def test_all_day_series() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    ev = EventData(uid="d", summary="Leave", start=start, end=start + timedelta(days=1), all_day=True,
                   rrule="FREQ=DAILY;COUNT=3")
    occ = expand_items([RemoteItem("d", None, ev)], WINDOW)
    assert [o.recurrence_key for o in occ] == ["20260302", "20260303", "20260304"]
    assert all(o.event.end - o.event.start == timedelta(days=1) and o.event.all_day for o in occ)


async def test_engine_expands_on_per_occurrence_calendars_and_follows_exdates(core: Core) -> None:
    clinic = await make_clinic(core, source_series=False)
    src = clinic.servers["source"]
    clinic.now = datetime(2026, 3, 15, tzinfo=UTC)
    src.put(weekly(), "s1")
    assert (await sync_connection(core, clinic.connections["source"])).created == 4
    src.put(weekly(exdates=(datetime(2026, 4, 3, 9, 0, tzinfo=LONDON),)), "s1")
    report = await sync_connection(core, clinic.connections["source"])
    assert (report.created, report.deleted) == (0, 1)
    statuses = [(a.start.astimezone(LONDON).day, a.status) for a in await appointments(core)]
    assert statuses == [(20, "confirmed"), (27, "confirmed"), (3, "cancelled"), (10, "confirmed")]


async def test_engine_keeps_series_on_series_calendars(core: Core) -> None:
    clinic = await make_clinic(core)
    clinic.now = datetime(2026, 3, 15, tzinfo=UTC)
    clinic.servers["source"].put(weekly(), "s1")
    await sync_connection(core, clinic.connections["source"])
    (appt,) = await appointments(core)
    assert appt.rrule == "FREQ=WEEKLY;COUNT=4" and appt.tzid == "Europe/London"
