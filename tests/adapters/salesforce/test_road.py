"""The practice's visits reach Salesforce through the CRM log: a booking becomes an Event upserted by
its visit key on a new Lead, a move from chat updates the same Event, a cancel and an attended visit
mark it, every write audited; a crash after the upsert makes no second Event; the org's spent API
allowance parks the log; an expired connection stops its log and asks for a reconnect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sync.boot import open_core
from sync.engine.run import sync_connection
from sync.notify import crm
from sync.runtime.core import Core
from sync.services import moves
from sync.services.appointments import mark
from sync.services.status import connection_status
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, Calendar, Connection, CrmEntry
from tests.adapters.salesforce.conftest import EXT
from tests.adapters.salesforce.fakes.salesforce import SalesforceFake
from tests.conftest import drop_schema, make_settings
from tests.sync.helpers import NOW, Clinic, booking, make_clinic


@pytest.fixture
async def core(backend: str, tmp_path: Path, fake: SalesforceFake) -> AsyncIterator[Core]:
    settings = make_settings(backend, tmp_path, salesforce_login_url=fake.url, salesforce_client_id=fake.client_id,
                             salesforce_client_secret=fake.client_secret, allow_private_urls=True)
    c = open_core(settings)
    await upgrade(c.store)
    try:
        yield c
    finally:
        await c.close()
        await drop_schema(settings)


async def salesforce_clinic(core: Core, fake: SalesforceFake) -> tuple[Clinic, int]:
    clinic = await make_clinic(core, mirrors=0)
    fake.refresh_tokens.add("rt-1")
    async with core.store.session() as s:
        conn = Connection(practice_id=clinic.practice_id, provider="salesforce", account="northside.my.salesforce.com",
                          config={"instance_url": fake.url}, credentials={
                              "access_token": fake.session(), "refresh_token": "rt-1", "instance_url": fake.url,
                              "login_url": fake.url, "expires_at": NOW.timestamp() + 10 ** 9})
        s.add(conn)
        await s.flush()
        return clinic, conn.id


async def book(clinic: Clinic, uid: str, hours: int, email: str = "jane.roe@client.example") -> int:
    clinic.servers["source"].put(booking(uid, NOW + timedelta(days=1, hours=hours), minutes=45,
                                         client_email=email, client_name="Jane Roe"))
    await sync_connection(clinic.core, clinic.connections["source"])
    async with clinic.core.store.session() as s:
        return int(await s.scalar(select(Appointment.id).where(Appointment.source_uid == uid)) or 0)


def event_of(fake: SalesforceFake, key: str) -> dict[str, object]:
    [found] = [e for e in fake.live("Event") if e.get(EXT) == key]
    return found


async def test_booking_move_cancel_and_attended_reach_salesforce_as_one_event_each(
        core: Core, fake: SalesforceFake) -> None:
    clinic, _ = await salesforce_clinic(core, fake)
    first, second = await book(clinic, "bk-1", 0), await book(clinic, "bk-2", 3)
    assert (await crm.log_due(core)).logged == 2
    assert len(fake.live("Lead")) == 1 and len(fake.live("Event")) == 2
    one = event_of(fake, f"clinicbot-{clinic.practice_id}-{first}")
    assert one["WhoId"] == fake.live("Lead")[0]["Id"] and one["Subject"] == "Physio with Dr Lee"
    moved_to = NOW + timedelta(days=2, hours=5)
    await moves.move(core, clinic.practice_id, first, moved_to, actor="slack:T1/UDESK")
    await moves.cancel(core, clinic.practice_id, second, reason="client ill", actor="slack:T1/UDESK")
    assert (await crm.log_due(core)).logged == 2
    one = event_of(fake, f"clinicbot-{clinic.practice_id}-{first}")
    assert one["StartDateTime"] == moved_to.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert "moved" in str(one["Description"])
    two = event_of(fake, f"clinicbot-{clinic.practice_id}-{second}")
    assert str(two["Subject"]).startswith("Cancelled: ") and two["ShowAs"] == "Free"
    async with core.store.session() as s:
        appt = await s.get(Appointment, first)
        assert appt is not None
        await mark(s, core.bus, appt, "completed", "teams:T1/UDESK")
    assert (await crm.log_due(core)).logged == 1
    assert str(event_of(fake, f"clinicbot-{clinic.practice_id}-{first}")["Subject"]).startswith("Attended: ")
    assert len(fake.live("Event")) == 2 and len(fake.live("Lead")) == 1
    async with core.store.session() as s:
        logged = await s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "crm.logged"))
    assert logged == 5


class Crash(Exception):
    pass


async def test_a_crash_after_the_upsert_makes_no_second_event(core: Core, fake: SalesforceFake) -> None:
    clinic, _ = await salesforce_clinic(core, fake)
    await book(clinic, "bk-1", 0)

    def crash(label: str) -> None:
        if label == "crm.remote_done":
            raise Crash(label)

    core.services.fault_injector = crash
    await crm.log_due(core)
    core.services.fault_injector = None
    assert len(fake.live("Event")) == 1
    assert (await crm.log_due(core)).logged == 1
    assert len(fake.live("Event")) == 1


async def test_the_spent_api_allowance_parks_the_log_and_an_expired_grant_asks_for_a_reconnect(
        core: Core, fake: SalesforceFake) -> None:
    clinic, conn_id = await salesforce_clinic(core, fake)
    await book(clinic, "bk-1", 0)
    fake.limit_exceeded = 1
    stats = await crm.log_due(core)
    assert (stats.logged, stats.waiting) == (0, 1) and fake.live("Event") == []
    async with core.store.session() as s:
        row = (await s.scalars(select(CrmEntry))).one()
        assert row.next_attempt_at >= NOW + timedelta(minutes=10) and row.attempts == 0
    clinic.now = NOW + timedelta(minutes=11)
    fake.expire_sessions()
    fake.refresh_tokens.clear()  # the grant was revoked in Salesforce
    assert (await crm.log_due(core)).logged == 0
    async with core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None and conn.status == "auth_expired"
        row = (await s.scalars(select(CrmEntry))).one()
        assert row.status == "pending"  # kept for after the reconnect
        expired = await s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "connection.auth_expired"))
    assert expired == 1
    assert fake.live("Event") == []
    [status] = [c for c in await connection_status(core) if c.connection_id == conn_id]
    assert status.pending_ops == 1 and status.status == "auth_expired"  # `sync status` shows the waiting log


async def test_events_made_in_salesforce_for_a_mapped_user_are_bookings_moved_and_cancelled_by_polling(
        core: Core, fake: SalesforceFake) -> None:
    clinic, conn_id = await salesforce_clinic(core, fake)
    lee = fake.add("User", FirstName="Ann", LastName="Lee", IsActive=True)
    jane = fake.add("Contact", FirstName="Jane", LastName="Roe", Email="jane@client.example")
    start = NOW + timedelta(days=2)
    event = fake.add("Event", Subject="Reiki", StartDateTime=start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                     EndDateTime=(start + timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%S.000Z"), OwnerId=lee,
                     WhoId=jane)
    async with core.store.session() as s:
        s.add(Calendar(connection_id=conn_id, remote_id=lee, name="Ann Lee", role="source",
                       practitioner_id=clinic.practitioner_id))
    core.services.provider_factory = None  # Salesforce is opened through the registry, like in production
    await sync_connection(core, conn_id)
    async with core.store.session() as s:
        [appt] = (await s.scalars(select(Appointment).where(Appointment.source_uid == event))).all()
        assert appt.start == start and appt.client_email == "jane@client.example" and appt.status == "confirmed"
    fake.requests.clear()
    await sync_connection(core, conn_id)
    assert fake.count("GET", "/services/data/v60.0/query") == 1  # nothing changed: one request
    later = start + timedelta(hours=3)
    fake.records["Event"][event].update(StartDateTime=later.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                        EndDateTime=(later + timedelta(minutes=45)).strftime(
                                            "%Y-%m-%dT%H:%M:%S.000Z"), SystemModstamp=fake.tick())
    await sync_connection(core, conn_id)
    async with core.store.session() as s:
        appt = (await s.scalars(select(Appointment).where(Appointment.source_uid == event))).one()
        assert appt.start == later
    fake.records["Event"][event].update(IsDeleted=True, SystemModstamp=fake.tick())
    await sync_connection(core, conn_id)
    async with core.store.session() as s:
        appt = (await s.scalars(select(Appointment).where(Appointment.source_uid == event))).one()
        assert appt.status == "cancelled"
        # The visit came from Salesforce: nothing of it was logged back there.
        assert (await s.scalars(select(CrmEntry).where(CrmEntry.appointment_id == appt.id))).all() == []
