"""Series on a real Radicale: an override lives in its master's resource, under its own id."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapters.caldav import CalDAVCalendar
from sync.contract import NotFound, WrongEtag
from sync.contract.items import EventData, Window

pytestmark = pytest.mark.radicale
BERLIN = ZoneInfo("Europe/Berlin")


class TestSeries:
    server_fixture = "radicale_none"

    async def test_override_update_and_delete_keep_the_series_whole(
        self, caldav_pair: tuple[CalDAVCalendar, CalDAVCalendar]
    ) -> None:
        provider, peer = caldav_pair
        first = datetime.combine(datetime.now(BERLIN).date() + timedelta(days=2), time(8), BERLIN)
        master = EventData(
            uid="weekly-physio",
            summary="Physio",
            start=first,
            end=first + timedelta(hours=1),
            tzid="Europe/Berlin",
            rrule="FREQ=WEEKLY;COUNT=4",
            clinicbot_id="A-7",
        )
        created = await provider.create(master, idempotency_key=master.uid)
        second = first + timedelta(weeks=1)
        moved = master.with_changes(
            rrule=None,
            recurrence_id=second,
            start=second + timedelta(hours=2),
            end=second + timedelta(hours=3),
            summary="Physio (moved)",
        )
        override_id = f"{created.remote_id}#{second.astimezone(UTC):%Y%m%dT%H%M%SZ}"
        written = await provider.update(override_id, moved, if_match=created.etag)
        assert written.remote_id == override_id

        window = Window.around(datetime.now(UTC))
        listing = await provider.changes(None, window)
        by_id = {item.remote_id: item for item in listing.items}
        assert set(by_id) == {created.remote_id, override_id}
        assert by_id[override_id].event.summary == "Physio (moved)"
        assert by_id[created.remote_id].etag == by_id[override_id].etag == written.etag

        # A stale etag on the resource refuses an override write too.
        with pytest.raises(WrongEtag):
            await peer.update(override_id, moved.with_changes(summary="x"), if_match=created.etag)

        # Editing the master keeps the override.
        renamed = await provider.update(created.remote_id, master.with_changes(summary="Physio series"), written.etag)
        assert (await provider.get(override_id)).event.summary == "Physio (moved)"

        # Deleting the override cancels that occurrence: it becomes an EXDATE of the master.
        await provider.delete(override_id, if_match=renamed.etag)
        with pytest.raises(NotFound):
            await provider.get(override_id)
        series = (await provider.get(created.remote_id)).event
        assert series.summary == "Physio series" and series.exdates == (second,)
        busy = await provider.free_busy(window)
        assert [b.start for b in busy] == [first, first + timedelta(weeks=2), first + timedelta(weeks=3)]

        since = await provider.changes(listing.cursor, window)
        assert [item.remote_id for item in since.items] == [created.remote_id]
