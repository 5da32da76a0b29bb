"""A work calendar (role `work`) connected through Nylas: its events show apart in `/clinic today`,
read live, and nothing about them reaches the database (every table is read back, decrypted)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect, literal_column, select, table

from sync.engine.run import sync_connection
from sync.services.connections import set_calendar
from sync.store.model import Appointment, Base
from tests.adapters.nylas.fakes.nylas import NylasFake, timespan
from tests.adapters.nylas.test_road import clinic, connect, nylas
from tests.e2e.conftest import TZ, at
from tests.e2e.test_oauth_connect import Clinic, fake_slack

__all__ = ["clinic", "fake_slack", "nylas"]  # fixtures, used by name (the Nylas ones are test_road's)

TITLE = "Hospital board meeting"
SECRETS = (TITLE, "ceo@hospital.example", "Pat Chair", "Budget for the new wing")


async def everything_stored(clinic: Clinic) -> str:
    """Every row of every table as text: mapped ones through the model (decrypted), the rest raw."""
    seen: list[str] = []
    async with clinic.core.store.session() as s:
        for mapper in Base.registry.mappers:
            cls = mapper.class_
            for row in (await s.scalars(select(cls))).all():
                seen.append(repr({a.key: getattr(row, a.key) for a in mapper.column_attrs}))
        schema = clinic.core.settings.database_schema or None
        names = await s.run_sync(lambda sync: inspect(sync.connection()).get_table_names(schema=schema))
        assert "calendar" in names and "appointment" in names
        for name in names:
            rows = await s.execute(select(literal_column("*")).select_from(table(name, schema=schema)))
            seen.append(repr(rows.all()))
    return "\n".join(seen)


async def test_work_events_show_apart_and_leave_nothing_stored(clinic: Clinic, nylas: NylasFake) -> None:
    nylas.next_login = ("outreach.lead@work.example", "google")
    conn, grant, _ = await connect(clinic, nylas)
    [work] = [c for c in await clinic.calendars() if c.role == "mirror"]
    await set_calendar(clinic.core, work.id, role="work", actor="cli:test")
    nylas.server_add(grant, work.remote_id, {
        "title": TITLE, "when": timespan(at(9), 90, TZ), "description": "Budget for the new wing",
        "participants": [{"email": "ceo@hospital.example", "name": "Pat Chair", "status": "yes"}]})
    nylas.server_add(grant, work.remote_id, {"title": "Yesterday's lunch",
                                             "when": timespan(at(12) - timedelta(days=1), 60, TZ)})
    report = await sync_connection(clinic.core, conn.id)
    assert report.failed == 0

    agenda = await clinic.say("today", "US", "agenda-1")
    assert "Work calendars" in agenda and TITLE in agenda and "*09:00\\u201310:30*" in agenda, agenda
    assert "Dr Lee" in agenda and "Yesterday" not in agenda

    stored = await everything_stored(clinic)
    for secret in SECRETS:
        assert secret not in stored, secret
    async with clinic.core.store.session() as s:
        assert (await s.scalars(select(Appointment))).all() == []

    # A work calendar that cannot be read is named; the agenda still answers (a fresh one: the
    # practitioner's day, which the answer cache does not hold yet).
    nylas.fail(503, "provider_error", "Provider unavailable", count=10)
    down = await clinic.say("today @dr-lee", "US", "agenda-3")
    assert "could not be read just now" in down and TITLE not in down, down
