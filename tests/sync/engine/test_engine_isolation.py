"""One connection failing in any way, not only with a ProviderError, never stops the others
(issue 21, item 6): the failure is recorded on that connection and the run goes on."""

from __future__ import annotations

from datetime import timedelta

from sync.engine.run import sync_all
from sync.runtime.core import Core
from sync.store.model import Connection
from tests.sync.helpers import NOW, appointments, booking, make_clinic


async def test_an_unexpected_error_in_one_connection_is_recorded_and_the_next_still_syncs(core: Core) -> None:
    clinic = await make_clinic(core, mirrors=0)
    await clinic.add_calendar("second", "source")
    clinic.servers["source"].put(booking("a1", NOW + timedelta(hours=2)))
    clinic.servers["second"].put(booking("b1", NOW + timedelta(hours=5)))
    clinic.servers["source"].fail_next("changes", OverflowError("date value out of range"))
    report = await sync_all(core)
    assert report.failed == 1
    assert [a.source_uid for a in await appointments(core)] == ["b1"]
    async with core.store.session() as s:
        broken = await s.get(Connection, clinic.connections["source"])
        fine = await s.get(Connection, clinic.connections["second"])
        assert broken is not None and fine is not None
        assert broken.last_error is not None and "OverflowError" in broken.last_error
        assert broken.status == "error"
        assert fine.last_error is None and fine.last_success_at is not None
    # Once the calendar reads again, the connection is active and clean again.
    report = await sync_all(core)
    assert report.failed == 0
    async with core.store.session() as s:
        broken = await s.get(Connection, clinic.connections["source"])
        assert broken is not None and broken.status == "active" and broken.last_error is None
