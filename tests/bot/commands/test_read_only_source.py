"""An appointment booked in a read-only source (an ICS feed) is not moved or cancelled from chat:
clinicbot cannot write the feed, so a "Moved" would be undone by the feed's next sync."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.commands import actions, handle, parse
from bot.views import Agenda, AppointmentDetail, Error
from sync.boot import open_core
from sync.engine.run import sync_all
from sync.runtime.core import Core
from sync.services.connections import add_connection
from sync.store.model import Appointment
from tests.adapters.ics.fakes.ics_feed import FeedServer
from tests.bot.clinic import at, make_actor, seed
from tests.conftest import drop_schema, make_settings


@pytest.fixture
async def core(backend: str, tmp_path: Path) -> AsyncIterator[Core]:
    """A migrated core that may read feeds on loopback (the fake booking system)."""
    from sync.store.migrate import upgrade

    settings = make_settings(backend, tmp_path, allow_private_urls=True)
    c = open_core(settings)
    await upgrade(c.store)
    try:
        yield c
    finally:
        await c.close()
        await drop_schema(settings)


def _feed(start_hour: int) -> str:
    utc = at(start_hour, day=4).astimezone(UTC)
    end = utc + timedelta(minutes=30)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example Booking//EN\r\nBEGIN:VEVENT\r\nUID:booking-77\r\n"
        f"DTSTAMP:20260301T000000Z\r\nDTSTART:{utc:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
        "SUMMARY:Check-up\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def test_a_visit_from_an_ics_feed_is_refused_with_the_reason(core: Core) -> None:
    await seed(core)
    async with FeedServer() as feeds:
        feeds.publish("/lee.ics", _feed(9))
        await add_connection(core, "ics", feeds.url("/lee.ics"), practitioner="dr-lee", actor="cli:test")
        await sync_all(core)
        async with core.store.session() as s:
            booked = await s.scalar(select(Appointment).where(Appointment.source_uid == "booking-77"))
            assert booked is not None
            appt_id, version, start = booked.id, booked.version, booked.start
        staff = await make_actor(core, "US", ("staff",))

        agenda = await handle(core, staff, parse("tomorrow"))
        assert isinstance(agenda, Agenda)
        [item] = [i for i in agenda.items if i.appointment_id == appt_id]
        assert [type(a).__name__ for a in item.actions] == ["ShowDetails"]  # no buttons that cannot work

        for attempt in (
            parse(f"reschedule A-{appt_id} tomorrow 3pm"),
            parse(f"cancel A-{appt_id}"),
            actions.OpenReschedule(appt_id, version),
            actions.PickSlot(appt_id, version, at(16, day=4), None),
            actions.CancelConfirmed(appt_id, version, "no"),
        ):
            view = await handle(core, staff, attempt)
            assert isinstance(view, Error), (attempt, view)
            assert "read-only" in view.message and "booking system" in view.message, view.message
        detail = await handle(core, staff, actions.ShowDetails(appt_id))
        assert isinstance(detail, AppointmentDetail) and "read-only" in detail.note

        # Nothing was written locally, so the feed's next change lands without a hidden overwrite.
        feeds.publish("/lee.ics", _feed(11))
        await sync_all(core)
        async with core.store.session() as s:
            row = await s.get(Appointment, appt_id)
            assert row is not None and row.status == "confirmed"
            assert row.start == start + timedelta(hours=2)
