"""The practice's visits reach HubSpot through the CRM log: a booking found by a sync becomes a meeting
on the client's contact, a move from chat updates it, a cancel and a no-show set its outcome, every
write audited; a crash after HubSpot made the meeting makes no second one; HubSpot's daily limit parks
the log until it is over; a visit that came from HubSpot is not logged back to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.hubspot.meetings import KEY_PROPERTY, ms
from sync.boot import open_core
from sync.engine.run import sync_connection
from sync.notify import crm
from sync.runtime.core import Core
from sync.services import moves
from sync.services.appointments import mark
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, Calendar, Connection, CrmEntry
from tests.adapters.hubspot.fakes.hubspot import HubSpotFake
from tests.conftest import drop_schema, make_settings
from tests.sync.helpers import NOW, Clinic, booking, make_clinic


@pytest.fixture
async def core(backend: str, tmp_path: Path, fake: HubSpotFake) -> AsyncIterator[Core]:
    settings = make_settings(backend, tmp_path, hubspot_api_url=fake.url, hubspot_client_id=fake.client_id,
                             hubspot_client_secret=fake.client_secret)
    c = open_core(settings)
    await upgrade(c.store)
    try:
        yield c
    finally:
        await c.close()
        await drop_schema(settings)


async def hubspot_clinic(core: Core, fake: HubSpotFake) -> tuple[Clinic, int]:
    """A practice whose bookings come from a source calendar, with HubSpot connected (a private-app token)."""
    clinic = await make_clinic(core, mirrors=0)
    async with core.store.session() as s:
        conn = Connection(practice_id=clinic.practice_id, provider="hubspot", account="northside.hubspot.com",
                          config={"portal_id": str(fake.portal_id)}, credentials={"password": fake.token})
        s.add(conn)
        await s.flush()
        return clinic, conn.id


async def book(clinic: Clinic, uid: str, hours: int) -> int:
    clinic.servers["source"].put(booking(uid, NOW + timedelta(days=1, hours=hours), minutes=45,
                                         client_email="jane.roe@client.example", client_name="Jane Roe"))
    await sync_connection(clinic.core, clinic.connections["source"])
    async with clinic.core.store.session() as s:
        return int(await s.scalar(select(Appointment.id).where(Appointment.source_uid == uid)) or 0)


async def audits(core: Core, action: str) -> int:
    async with core.store.session() as s:
        return int(await s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))
                   or 0)


async def test_booking_move_cancel_and_no_show_reach_hubspot_once_each(core: Core, fake: HubSpotFake) -> None:
    clinic, conn_id = await hubspot_clinic(core, fake)
    owner = fake.add_owner("Ann", "Lee", "lee@northside.example")
    async with core.store.session() as s:  # the practitioner mapped to their HubSpot owner (`staff map`)
        s.add(Calendar(connection_id=conn_id, remote_id=owner, name="Ann Lee", role="source",
                       practitioner_id=clinic.practitioner_id))
    first = await book(clinic, "bk-1", 0)
    second = await book(clinic, "bk-2", 3)
    stats = await crm.log_due(core)
    assert (stats.logged, stats.failed) == (2, 0)
    assert len(fake.contacts) == 1 and len(fake.meetings) == 2
    by_key = {m[KEY_PROPERTY]: (mid, m) for mid, m in fake.meetings.items()}
    mid, meeting = by_key[f"clinicbot-{clinic.practice_id}-{first}"]
    assert meeting["hs_meeting_start_time"] == ms(NOW + timedelta(days=1))
    assert meeting["hs_meeting_outcome"] == "SCHEDULED" and meeting["hs_meeting_title"] == "Physio with Dr Lee"
    assert meeting["hubspot_owner_id"] == owner
    assert fake.links[mid] == list(fake.contacts)

    moved_to = NOW + timedelta(days=2, hours=5)
    await moves.move(core, clinic.practice_id, first, moved_to, actor="slack:T1/UDESK")
    await moves.cancel(core, clinic.practice_id, second, reason="client ill", actor="slack:T1/UDESK")
    assert (await crm.log_due(core)).logged == 2
    assert fake.meetings[mid]["hs_meeting_start_time"] == ms(moved_to)
    assert fake.meetings[mid]["hs_meeting_outcome"] == "RESCHEDULED"
    assert by_key[f"clinicbot-{clinic.practice_id}-{second}"][1]["hs_meeting_outcome"] == "CANCELED"

    async with core.store.session() as s:
        appt = await s.get(Appointment, first)
        assert appt is not None
        await mark(s, core.bus, appt, "no_show", "teams:T1/UDESK")
    assert (await crm.log_due(core)).logged == 1
    assert fake.meetings[mid]["hs_meeting_outcome"] == "NO_SHOW"
    assert len(fake.meetings) == 2 and len(fake.contacts) == 1
    assert await audits(core, "crm.logged") == 5
    assert (await crm.log_due(core)).logged == 0  # nothing left: nothing written again


class Crash(Exception):
    pass


async def test_a_crash_after_hubspot_made_the_meeting_makes_no_second_one(core: Core, fake: HubSpotFake) -> None:
    clinic, _ = await hubspot_clinic(core, fake)
    appt = await book(clinic, "bk-1", 0)

    def crash(label: str) -> None:
        if label == "crm.remote_done":
            raise Crash(label)

    core.services.fault_injector = crash
    await crm.log_due(core)  # HubSpot has the meeting; clinicbot never recorded its id
    core.services.fault_injector = None
    assert len(fake.meetings) == 1
    async with core.store.session() as s:
        row = (await s.scalars(select(CrmEntry))).one()
        assert (row.status, row.remote_id) == ("pending", None)
    assert (await crm.log_due(core)).logged == 1
    assert len(fake.meetings) == 1
    async with core.store.session() as s:
        row = (await s.scalars(select(CrmEntry))).one()
        assert row.status == "done" and row.remote_id == next(iter(fake.meetings))
        assert row.appointment_id == appt


async def test_hubspots_daily_limit_parks_the_log_until_it_is_over(core: Core, fake: HubSpotFake) -> None:
    clinic, conn_id = await hubspot_clinic(core, fake)
    await book(clinic, "bk-1", 0)
    await book(clinic, "bk-2", 2)
    fake.throttle, fake.daily = 100, True
    stats = await crm.log_due(core)
    assert (stats.logged, stats.waiting) == (0, 1)
    assert fake.count("POST", "/crm/v3/objects/contacts/search") == 1  # stopped at the first 429
    async with core.store.session() as s:
        rows = (await s.scalars(select(CrmEntry).where(CrmEntry.connection_id == conn_id))).all()
        assert all(r.status == "pending" and r.next_attempt_at >= NOW + timedelta(hours=1) for r in rows)
        assert all(r.attempts == 0 for r in rows)  # HubSpot's wait is not our failure
    fake.throttle = 0
    assert (await crm.log_due(core)).logged == 0  # still inside the wait
    clinic.now = NOW + timedelta(hours=1, seconds=1)
    assert (await crm.log_due(core)).logged == 2 and len(fake.meetings) == 2


async def test_a_visit_that_came_from_hubspot_is_not_logged_back_to_it(
        core: Core, fake: HubSpotFake) -> None:
    clinic, conn_id = await hubspot_clinic(core, fake)
    first = await book(clinic, "bk-1", 0)
    async with core.store.session() as s:
        cal = Calendar(connection_id=conn_id, remote_id="4711", name="Dr Lee (HubSpot)", role="source",
                       practitioner_id=clinic.practitioner_id)
        s.add(cal)
        await s.flush()
        appt = await s.get(Appointment, first)
        assert appt is not None
        appt.source_calendar_id = cal.id  # as if HubSpot held this booking
    await moves.move(core, clinic.practice_id, first, NOW + timedelta(days=3), actor="slack:T1/UDESK")
    async with core.store.session() as s:
        row = (await s.scalars(select(CrmEntry))).one()
        assert row.want_version == 1  # the booking (from the other source) only; the move was not queued
    assert (await crm.log_due(core)).logged == 1


async def test_a_lost_create_answer_then_a_move_still_makes_one_meeting(core: Core, fake: HubSpotFake) -> None:
    clinic, _ = await hubspot_clinic(core, fake)
    appt = await book(clinic, "bk-1", 0)
    fake.lose_next_create = True
    assert (await crm.log_due(core)).retried == 1  # HubSpot made the meeting; the answer was a 502
    assert len(fake.meetings) == 1
    moved_to = NOW + timedelta(days=4)
    await moves.move(core, clinic.practice_id, appt, moved_to, actor="slack:T1/UDESK")  # before the retry
    clinic.now = NOW + timedelta(minutes=5)
    fake.requests.clear()
    assert (await crm.log_due(core)).logged == 1
    assert fake.count("POST", "/crm/v3/objects/meetings/search") == 1  # looked for the lost one first
    [meeting] = fake.meetings.values()
    assert meeting["hs_meeting_start_time"] == ms(moved_to) and meeting["hs_meeting_outcome"] == "RESCHEDULED"
