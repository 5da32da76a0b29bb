"""`connect zoho` to bookings: the sign-in round trip through the core stores the connection at the
person's data centre with encrypted credentials and its calendars; an event in the Zoho calendar
becomes the practitioner's appointment, and a quiet poll then costs one request per calendar."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from adapters.zoho.mapping import event_data
from adapters.zoho.settings import ZohoSettings
from sync.contract.items import EventData
from sync.engine.run import sync_connection
from sync.integrations.connect import begin_oauth, finish_oauth
from sync.runtime.core import Core
from sync.services.practices import create_practice
from sync.store.model import Appointment, Calendar, Connection, Practitioner
from tests.adapters.zoho.conftest import CALENDAR, zoho_host
from tests.adapters.zoho.fakes.zoho import ZohoFake


async def test_connect_zoho_then_its_bookings_are_appointments(core: Core, fake: ZohoFake) -> None:
    core.settings = core.settings.with_sections(zoho_host(fake).section(ZohoSettings))
    async with core.store.session() as s:
        practice = await create_practice(s, "Lee Clinic", "Europe/Berlin", "test")
        lee = Practitioner(practice_id=practice.id, name="Dr Lee", handle="dr-lee", timezone="Europe/Berlin")
        s.add(lee)
        await s.flush()
        practice_id, lee_id = practice.id, lee.id
    pending = await begin_oauth(core, "zoho", practice_id=practice_id, chat_identity_id=None, practitioner_id=lee_id)
    query = {"state": pending.state, "code": fake.authorize("eu"), "location": "eu",
             "accounts-server": f"{fake.url}/accounts/eu"}
    saved = await finish_oauth(core, "zoho", query)
    async with core.store.session() as s:
        conn = await s.get(Connection, saved.connection_id)
        assert conn is not None and conn.config["dc"] == "eu" and conn.account == "lee@clinic.example"
        raw = (await s.execute(text("SELECT credentials FROM connection"))).scalar_one()
        assert conn.credentials and conn.credentials["refresh_token"] not in raw
        roles = {c.remote_id: (c.role, c.read_only) for c in (await s.scalars(select(Calendar))).all()}
    assert roles == {CALENDAR: ("source", False), "zRooms02==": ("busy", True)}
    # The practitioner's visit, made in Zoho.
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime.combine(datetime.now(berlin).date() + timedelta(days=1), time(10), berlin)
    visit = EventData(uid="v1", summary="Shiatsu - J. Roe", start=start, end=start + timedelta(minutes=50),
                      tzid="Europe/Berlin")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    fake.events[("eu", CALENDAR)]["v1@zoho.com"] = {**event_data(visit), "uid": "v1@zoho.com", "etag": "17",
                                                    "lastmodifiedtime": stamp, "estatus": "added"}
    await sync_connection(core, saved.connection_id)
    async with core.store.session() as s:
        (appt,) = (await s.scalars(select(Appointment))).all()
        assert appt.practitioner_id == lee_id and appt.start.astimezone(UTC) == start.astimezone(UTC)
    before = len(fake.requests)
    await sync_connection(core, saved.connection_id)
    made = fake.requests[before:]
    assert all("lastmodified=" in path for _, path in made if "/events" in path)
    # One request for the source calendar (the busy one is read for free/busy only).
    assert len([p for _, p in made if "/events" in p]) == 1, json.dumps(made)
