"""The CRM log's rules, with HubSpot and Salesforce both connected to one practice: a change rolled back
logs nothing, a replayed or older event changes nothing, a CRM that fails never holds up the other,
a refusal is kept as failed (audited, shown in status) while the rest go on, and `crm_log: false` stops
a connection's logging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.commands.errors import ParseError
from bot.commands.grammar import GRAMMAR, parse
from bot.commands.handlers import handle
from bot.views import Error, Notice
from sync.boot import open_core
from sync.notify import crm
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent
from sync.services.identities import Actor
from sync.services.status import connection_status
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, Connection, CrmEntry, Practice, Practitioner
from tests.adapters.hubspot.fakes.hubspot import HubSpotFake
from tests.adapters.salesforce.fakes.salesforce import SalesforceFake
from tests.conftest import drop_schema, make_settings
from tests.sync.helpers import NOW


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[HubSpotFake, SalesforceFake]]:
    hub, org = await HubSpotFake().start(), await SalesforceFake().start()
    try:
        yield hub, org
    finally:
        await hub.close()
        await org.close()


@pytest.fixture
async def core(backend: str, tmp_path: Path, fakes: tuple[HubSpotFake, SalesforceFake]) -> AsyncIterator[Core]:
    hub, org = fakes
    settings = make_settings(backend, tmp_path, hubspot_api_url=hub.url, salesforce_login_url=org.url,
                             allow_private_urls=True)
    c = open_core(settings)
    c.clock = lambda: NOW
    await upgrade(c.store)
    try:
        yield c
    finally:
        await c.close()
        await drop_schema(settings)


async def practice(core: Core, hub: HubSpotFake, org: SalesforceFake) -> tuple[int, int, int, int]:
    """(practice, practitioner, HubSpot connection, Salesforce connection)."""
    async with core.store.session() as s:
        p = Practice(name="Northside Clinic", timezone="Europe/London")
        s.add(p)
        await s.flush()
        lee = Practitioner(practice_id=p.id, name="Dr Lee", handle="dr-lee", timezone="Europe/London")
        hs = Connection(practice_id=p.id, provider="hubspot", account="hub", config={"portal_id": "1"},
                        credentials={"password": hub.token})
        sf = Connection(practice_id=p.id, provider="salesforce", account="org", config={"instance_url": org.url},
                        credentials={"access_token": org.session(), "instance_url": org.url})
        s.add_all([lee, hs, sf])
        await s.flush()
        return p.id, lee.id, hs.id, sf.id


async def visit(core: Core, practice_id: int, practitioner_id: int, email: str = "jane@client.example",
                fail: bool = False) -> int:
    """A visit stored and announced as a sync does, in one transaction (which `fail` rolls back)."""
    try:
        async with core.store.session() as s:
            appt = Appointment(practice_id=practice_id, practitioner_id=practitioner_id, start=NOW + timedelta(days=1),
                               end=NOW + timedelta(days=1, minutes=30), tzid="Europe/London", status="confirmed",
                               version=1, exdates=[], client_name="Jane Roe", client_email=email, service="Physio")
            s.add(appt)
            await s.flush()
            await core.bus.emit(s, AppointmentEvent("created", appt.id, 1, practice_id, practitioner_id, "test"))
            if fail:
                raise RuntimeError("the change failed after its event")
            return appt.id
    except RuntimeError:
        return 0


async def entries(core: Core) -> list[CrmEntry]:
    async with core.store.session() as s:
        return list((await s.scalars(select(CrmEntry).order_by(CrmEntry.connection_id))).all())


async def test_a_rolled_back_change_logs_nothing_and_a_replayed_event_changes_nothing(
        core: Core, fakes: tuple[HubSpotFake, SalesforceFake]) -> None:
    hub, org = fakes
    practice_id, lee, _, _ = await practice(core, hub, org)
    assert await visit(core, practice_id, lee, fail=True) == 0
    assert await entries(core) == []
    appt = await visit(core, practice_id, lee)
    assert [e.want_version for e in await entries(core)] == [1, 1]
    async with core.store.session() as s:
        await crm.on_event(core, s, AppointmentEvent("created", appt, 1, practice_id, lee, "test"))  # a replay
    assert (await crm.log_due(core)).logged == 2
    async with core.store.session() as s:
        await crm.on_event(core, s, AppointmentEvent("cancelled", appt, 1, practice_id, lee, "test"))  # stale
    assert all(e.status == "done" for e in await entries(core))
    assert (await crm.log_due(core)).logged == 0
    assert len(hub.meetings) == 1 and len(org.live("Event")) == 1


async def test_a_failing_crm_never_holds_up_the_other_and_a_refusal_is_kept_and_shown(
        core: Core, fakes: tuple[HubSpotFake, SalesforceFake]) -> None:
    hub, org = fakes
    practice_id, lee, hs_id, sf_id = await practice(core, hub, org)
    await visit(core, practice_id, lee)
    await visit(core, practice_id, lee, email="bob@client.example")
    org.external_id_fields.clear()  # the org's admin has not added the External ID field yet
    hub.throttle, hub.daily = 100, True  # and HubSpot's daily limit is spent
    stats = await crm.log_due(core)
    assert stats.logged == 0 and stats.failed == 2 and stats.waiting == 1
    by_conn = {}
    for e in await entries(core):
        by_conn.setdefault(e.connection_id, []).append(e)
    assert {e.status for e in by_conn[sf_id]} == {"failed"}
    assert "Provided external ID field does not exist" in str(by_conn[sf_id][0].last_error)
    assert {e.status for e in by_conn[hs_id]} == {"pending"}
    async with core.store.session() as s:
        failed = await s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "crm.failed"))
    assert failed == 2
    status = {c.connection_id: c for c in await connection_status(core)}
    assert status[sf_id].failed_ops == 2 and "external ID" in str(status[sf_id].last_failed_error)
    assert status[hs_id].pending_ops == 2


async def test_crm_log_off_stops_a_connections_logging(core: Core, fakes: tuple[HubSpotFake, SalesforceFake]) -> None:
    hub, org = fakes
    practice_id, lee, hs_id, sf_id = await practice(core, hub, org)
    async with core.store.session() as s:
        conn = await s.get(Connection, hs_id)
        assert conn is not None
        conn.config = {**conn.config, "crm_log": False}
    await visit(core, practice_id, lee)
    assert [e.connection_id for e in await entries(core)] == [sf_id]


async def series_change(core: Core, practice_id: int, lee: int, kind: str, version: int, **values: object) -> int:
    """A weekly series (six visits from tomorrow) stored or changed as a sync does, with its event."""
    async with core.store.session() as s:
        appt = await s.scalar(select(Appointment).where(Appointment.rrule.is_not(None)))
        if appt is None:
            appt = Appointment(practice_id=practice_id, practitioner_id=lee, start=NOW + timedelta(days=1),
                               end=NOW + timedelta(days=1, minutes=30), tzid="Europe/London", status="confirmed",
                               version=version, exdates=[], client_name="Jane Roe",
                               client_email="jane@client.example", rrule="FREQ=WEEKLY;COUNT=6")
            s.add(appt)
        for name, value in values.items():
            setattr(appt, name, value)
        appt.version = version
        await s.flush()
        await core.bus.emit(s, AppointmentEvent(kind, appt.id, version, practice_id, lee, "test"))
        return appt.id


async def test_a_recurring_series_is_logged_visit_by_visit_within_the_window_once_each(
        core: Core, fakes: tuple[HubSpotFake, SalesforceFake]) -> None:
    hub, org = fakes
    practice_id, lee, hs_id, _ = await practice(core, hub, org)
    series_id = await series_change(core, practice_id, lee, "created", 1)
    # Four of its six visits fall in the next 28 days: one activity each, in both CRMs.
    rows = await entries(core)
    assert len(rows) == 8 and len({e.visit_key for e in rows}) == 4
    assert all(e.visit_key.startswith(f"clinicbot-{practice_id}-{series_id}-") for e in rows)
    assert (await crm.log_due(core)).logged == 8
    assert len(hub.meetings) == 4 and len(org.live("Event")) == 4
    starts = sorted(str(m["hs_meeting_start_time"]) for m in hub.meetings.values())
    assert len(set(starts)) == 4
    # The same event again, and the sweep: nothing new, nothing written twice.
    async with core.store.session() as s:
        await crm.on_event(core, s, AppointmentEvent("created", series_id, 1, practice_id, lee, "test"))
    await crm.log_job(core)
    assert len(hub.meetings) == 4 and len(org.live("Event")) == 4 and len(await entries(core)) == 8

    # A week on, the fifth visit comes into the window: the sweep logs it, once.
    week = NOW + timedelta(days=7)
    core.clock = lambda: week
    assert await crm.queue_series(core) == 2
    assert await crm.queue_series(core) == 0
    await crm.log_due(core)
    assert len(hub.meetings) == 5 and len(org.live("Event")) == 5

    # The third visit is taken out of the series (an EXDATE): its activity is cancelled, the others stay.
    third = NOW + timedelta(days=15)
    await series_change(core, practice_id, lee, "updated", 2, exdates=[third.isoformat()])
    changed = [e for e in await entries(core) if e.want_version == 2 and e.status == "pending"]
    assert {(e.want or {})["stage"] for e in changed} == {"cancelled"} and len(changed) == 2
    await crm.log_due(core)
    outcomes = sorted(str(m.get("hs_meeting_outcome")) for m in hub.meetings.values())
    assert outcomes.count("CANCELED") == 1 and len(hub.meetings) == 5
    async with core.store.session() as s:
        logged = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "crm.logged",
                                                           AuditEntry.appointment_id == series_id))).all()
    assert len(logged) == 5 * 2 + 2 and {e.details["connection_id"] for e in logged} >= {hs_id}


async def test_admins_see_each_crm_and_switch_its_logging_from_chat_audited(
        core: Core, fakes: tuple[HubSpotFake, SalesforceFake]) -> None:
    hub, org = fakes
    practice_id, lee, hs_id, sf_id = await practice(core, hub, org)
    admin = Actor(practice_id, 1, "slack", "Ann", frozenset({"admin"}), "T1", "UADMIN")
    staff = Actor(practice_id, 2, "slack", "Desk", frozenset({"staff"}), "T1", "UDESK")
    await visit(core, practice_id, lee)
    org.external_id_fields.clear()  # Salesforce refuses: the failure shows
    await crm.log_due(core)

    shown = await handle(core, admin, parse("crm"))
    assert isinstance(shown, Notice), shown
    lines = shown.text.splitlines()
    assert lines[0].startswith(f"• {hs_id} hubspot (hub): logging on; last write ") and "1 visits logged" in lines[0]
    assert lines[1].startswith(f"• {sf_id} salesforce (org): logging on; nothing written yet; 0 visits logged, "
                               "1 failed")
    assert "last failure:" in lines[2] and "external ID" in lines[2]
    assert "jane" not in shown.text.lower()  # no client detail
    refused = await handle(core, staff, parse("crm"))
    assert isinstance(refused, Error) and "only admins" in refused.message
    assert isinstance(await handle(core, staff, parse("crm log off hubspot")), Error)

    with pytest.raises(ParseError, match="on <connection>"):
        parse("crm log maybe hubspot")
    with pytest.raises(ParseError, match="which connection"):
        parse("crm log off")
    off = await handle(core, admin, parse("crm log off hubspot"))
    assert isinstance(off, Notice) and off.text.startswith("Visit logging to hubspot (hub) is now off.")
    again = await handle(core, admin, parse(f"crm log off {hs_id}"))
    assert isinstance(again, Notice) and "was already off" in again.text
    missing = await handle(core, admin, parse("crm log off 999"))
    assert isinstance(missing, Error) and "no connection is called '999'" in missing.message
    # A visit now goes to Salesforce only; back on, HubSpot logs the next change again.
    await visit(core, practice_id, lee, email="bob@client.example")
    assert sorted(e.connection_id for e in await entries(core)) == sorted([hs_id, sf_id, sf_id])
    await handle(core, admin, parse("crm log on hub"))
    async with core.store.session() as s:
        conn = await s.get(Connection, hs_id)
        assert conn is not None and conn.config["crm_log"] is True
        rows = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "connection.crm_log")
                                .order_by(AuditEntry.seq))).all()
    assert [(r.actor, r.before, r.after) for r in rows] == [
        ("slack:T1/UADMIN", {"crm_log": True}, {"crm_log": False}),
        ("slack:T1/UADMIN", {"crm_log": False}, {"crm_log": True})]
    assert [spec.name for spec in GRAMMAR].index("crm") > 11  # after the 12 the Teams manifest lists


async def test_one_changed_visit_of_a_series_updates_its_own_activity_not_a_new_one(
        core: Core, fakes: tuple[HubSpotFake, SalesforceFake]) -> None:
    hub, org = fakes
    practice_id, lee, _, _ = await practice(core, hub, org)
    series_id = await series_change(core, practice_id, lee, "created", 1, source_uid="weekly-1")
    await crm.log_due(core)
    assert len(hub.meetings) == 4
    second = NOW + timedelta(days=8)
    async with core.store.session() as s:  # the calendar moved the second visit by two hours (an override row)
        override = Appointment(practice_id=practice_id, practitioner_id=lee, start=second + timedelta(hours=2),
                               end=second + timedelta(hours=2, minutes=30), tzid="Europe/London",
                               status="confirmed", version=1, exdates=[], client_name="Jane Roe",
                               client_email="jane@client.example", source_uid="weekly-1",
                               recurrence_key=second.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
        s.add(override)
        await s.flush()
        await core.bus.emit(s, AppointmentEvent("rescheduled", override.id, 1, practice_id, lee, "test"))
        override_id = override.id
    rows = await entries(core)
    assert len(rows) == 8  # no new activity: the occurrence's own row now follows the override
    moved = [e for e in rows if e.appointment_id == override_id]
    assert len(moved) == 2 and all(e.visit_key.startswith(f"clinicbot-{practice_id}-{series_id}-") for e in moved)
    assert (await crm.log_due(core)).logged == 2
    assert len(hub.meetings) == 4 and len(org.live("Event")) == 4
    assert await crm.queue_series(core) == 0  # the sweep does not bring the replaced visit back
