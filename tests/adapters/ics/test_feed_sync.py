"""A feed with broken events, synced by the engine: the rest is imported, each skip is named in the
calendar's health (`sync status`, `doctor`), and an event that cannot be read this time is not
deleted as if it were gone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from adapters.kit.ical.writer import fold
from sync.engine.run import sync_connection
from sync.runtime.core import Core
from sync.services.status import connection_status
from tests.adapters.ics.fakes.ics_feed import FeedServer
from tests.adapters.ics.test_feed import NOW, provider
from tests.sync.helpers import appointments, make_clinic

PROBES = Path(__file__).parents[1] / "kit" / "ical" / "probes"


def _feed(*events: tuple[str, str]) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//booking//EN"]
    for n, (uid, dtstart) in enumerate(events):
        start = (NOW + timedelta(days=n + 1)).replace(hour=9, minute=0, second=0)
        lines += ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z",
                  dtstart or f"DTSTART:{start:%Y%m%dT%H%M%SZ}", "DURATION:PT30M", "SUMMARY:Visit", "END:VEVENT"]
    return "\r\n".join(fold(line) for line in [*lines, "END:VCALENDAR"]) + "\r\n"


async def _clinic_on_feed(core: Core, feeds: FeedServer) -> Any:
    clinic = await make_clinic(core, mirrors=0)
    feed_url = feeds.url("/lee.ics")
    clinic.factory = lambda conn, cal: provider(feed_url)  # type: ignore[method-assign]
    core.services.provider_factory = clinic.factory
    clinic.now = NOW
    return clinic


async def test_one_unreadable_event_is_named_and_the_rest_imported(core: Core, feeds: FeedServer) -> None:
    clinic = await _clinic_on_feed(core, feeds)
    feeds.publish("/lee.ics", _feed(("a", ""), ("b", ""), ("c", "")))
    assert (await sync_connection(core, clinic.connections["source"])).created == 3
    # "b" breaks: a year that does not fit; "d" is new. "b" is named, "d" imported, and "b" kept.
    feeds.publish("/lee.ics", _feed(("a", ""), ("b", "DTSTART;VALUE=DATE:99991231"), ("c", ""), ("d", "")))
    report = await sync_connection(core, clinic.connections["source"])
    assert (report.failed, report.created, report.deleted) == (0, 1, 0)
    assert sorted(a.source_uid or "" for a in await appointments(core) if a.status != "cancelled") == ["a", "b", "c", "d"]
    [status] = [s for s in await connection_status(core) if s.connection_id == clinic.connections["source"]]
    [note] = status.read_notes
    assert note.startswith("skipped b line 14:") and "out of the supported range" in note
    # Fixed at the source: the note goes with the next full read.
    feeds.publish("/lee.ics", _feed(("a", ""), ("b", ""), ("c", ""), ("d", ""), ("e", "")))
    await sync_connection(core, clinic.connections["source"])
    [status] = [s for s in await connection_status(core) if s.connection_id == clinic.connections["source"]]
    assert status.read_notes == ()


async def test_the_probe_feed_of_200_with_one_reversed_event_imports_all(core: Core, feeds: FeedServer) -> None:
    clinic = await _clinic_on_feed(core, feeds)
    feeds.publish("/lee.ics", (PROBES / "p6_one_bad_event_in_200.ics").read_bytes())
    clinic.now = NOW.replace(year=2026, month=4, day=1)
    report = await sync_connection(core, clinic.connections["source"])
    assert report.failed == 0 and report.created > 100
    [status] = [s for s in await connection_status(core) if s.connection_id == clinic.connections["source"]]
    assert [n.split(":")[0] for n in status.read_notes] == ["repaired probe-feed-117 line 827"]
