"""A copy clinicbot writes must read back with the same content hash, or every sync would take it
for a hand edit (a false conflict card per appointment)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from adapters.graph import open_calendar
from sync.contract import ConnectionInfo
from sync.contract.items import EventData, Window
from sync.runtime.settings import Settings


async def test_written_copy_reads_back_with_the_same_hash(delegated: ConnectionInfo, settings: Settings) -> None:
    cal = open_calendar(delegated, "me/calendar", settings)
    try:
        start = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(days=2)
        ev = EventData(uid="cb1c2", summary="Physio (J.R.)", start=start, end=start + timedelta(minutes=30),
                       tzid="Europe/London", clinicbot_id="1", categories=())
        made = await cal.create(ev, "cb1c2")
        listed = await cal.changes(None, Window.around(datetime.now(UTC)))
        [back] = [i for i in listed.items if i.remote_id == made.remote_id]
        got = await cal.get(made.remote_id)
        diffs = {k: (v, asdict(back.event)[k]) for k, v in asdict(made.event).items() if asdict(back.event)[k] != v}
        assert made.event.content_hash() == back.event.content_hash(), diffs
        assert got.event.content_hash() == back.event.content_hash()
    finally:
        await cal.aclose()
