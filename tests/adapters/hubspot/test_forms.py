"""HubSpot form submissions become leads: the leader's poll reads each named form from its mark on
(newest first, paging only while everything is new), maps the fields (the service, practitioner and
times fields per the connection's options), takes each submission once (its conversionId), costs one
request per form when nothing is new, passes over a bad submission and an unknown form, and stops a
connection on a 429 without losing its place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sync.boot import open_core
from sync.notify.lead_forms import MARKS, poll_forms
from sync.runtime.core import Core
from sync.store.migrate import upgrade
from sync.store.model import Connection, Lead, LeadSubmission
from tests.adapters.hubspot.fakes.hubspot import HubSpotFake
from tests.conftest import drop_schema, make_settings
from tests.sync.helpers import make_clinic

PATH = "/form-integrations/v1/submissions/forms/"


@pytest.fixture
async def core(backend: str, tmp_path: Path, fake: HubSpotFake) -> AsyncIterator[Core]:
    settings = make_settings(backend, tmp_path, hubspot_api_url=fake.url)
    c = open_core(settings)
    await upgrade(c.store)
    try:
        yield c
    finally:
        await c.close()
        await drop_schema(settings)


async def connect(core: Core, fake: HubSpotFake, forms: list[str], **options: str) -> int:
    clinic = await make_clinic(core, mirrors=0)
    async with core.store.session() as s:
        conn = Connection(practice_id=clinic.practice_id, provider="hubspot", account="northside.hubspot.com",
                          config={"portal_id": str(fake.portal_id), "forms": ",".join(forms), **options},
                          credentials={"password": fake.token})
        s.add(conn)
        await s.flush()
        return conn.id


async def leads(core: Core) -> list[Lead]:
    async with core.store.session() as s:
        return list((await s.scalars(select(Lead).order_by(Lead.id))).all())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_submissions_become_leads_once(core: Core, fake: HubSpotFake) -> None:
    form = fake.add_form()
    conn_id = await connect(core, fake, [form], form_service_field="treatment", form_times_field="when")
    first = fake.submit(form, {"email": "Ann.Lee@client.example", "firstname": "Ann", "lastname": "Lee",
                               "phone": "+15551234567", "treatment": "Reiki", "when": "Tuesday afternoons;after 5pm",
                               "preferred_practitioner": "Dr Lee", "message": "first visit"})
    fake.submit(form, {"email": "bo@client.example", "firstname": "Bo"})

    stats = await poll_forms(core)
    assert (stats.forms, stats.taken, stats.refused) == (1, 2, 0)
    ann, bo = await leads(core)
    assert (ann.source, ann.connection_id, ann.service, ann.email, ann.name) == \
        ("hubspot", conn_id, "Reiki", "Ann.Lee@client.example", "Ann Lee")
    assert ann.practitioner_id is not None and ann.wishes == {"message": "first visit", "unmatched": []}
    # "Tuesday afternoons;after 5pm": two preferred times, each read with the chat's time words
    assert ann.preference["windows"] == [[[1], "12:00", "17:00"], [[], "17:00", "23:59"]]
    assert bo.email == "bo@client.example"
    async with core.store.session() as s:
        ids = set((await s.scalars(select(LeadSubmission.submission_id))).all())
        conn = await s.get(Connection, conn_id)
        assert conn is not None
        assert first in ids and len(ids) == 2
        assert conn.config[MARKS][form]["ms"] == max(int(x["submittedAt"]) for x in fake.forms[form])

    # Nothing new: one request for the form, nothing taken twice.
    before = fake.count("GET", PATH)
    again = await poll_forms(core)
    assert (again.taken, again.duplicates) == (0, 0)
    assert fake.count("GET", PATH) == before + 1
    assert len(await leads(core)) == 2


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_paging_reads_back_to_the_mark_only(core: Core, fake: HubSpotFake) -> None:
    form = fake.add_form()
    await connect(core, fake, [form])
    fake.submit(form, {"email": "old@client.example"})
    await poll_forms(core)
    for n in range(120):  # more than two pages of 50 arrive between polls
        fake.submit(form, {"email": f"p{n}@client.example"})
    before = fake.count("GET", PATH)
    stats = await poll_forms(core)
    assert stats.taken == 120
    assert fake.count("GET", PATH) - before == 3
    assert len(await leads(core)) == 121


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_same_millisecond_and_merge(core: Core, fake: HubSpotFake) -> None:
    form = fake.add_form()
    await connect(core, fake, [form])
    at = int(fake._now())
    fake.submit(form, {"email": "a@client.example"}, at_ms=at)
    await poll_forms(core)
    fake.submit(form, {"email": "b@client.example"}, at_ms=at)  # listed at the mark's own time
    fake.submit(form, {"email": "a@client.example", "message": "again"})  # the same person: merged
    stats = await poll_forms(core)
    assert (stats.taken, stats.duplicates) == (2, 0)
    a, b = await leads(core)
    assert (a.email, a.submissions, b.email) == ("a@client.example", 2, "b@client.example")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_bad_submission_unknown_form_and_429(core: Core, fake: HubSpotFake) -> None:
    form = fake.add_form()
    conn_id = await connect(core, fake, ["no-such-form", form])
    fake.submit(form, {"firstname": "Nobody"})  # no email, no phone: refused, passed over
    fake.submit(form, {"email": "c@client.example"})
    stats = await poll_forms(core)
    assert (stats.forms, stats.taken, stats.refused) == (2, 1, 1)
    assert [x.email for x in await leads(core)] == ["c@client.example"]

    fake.submit(form, {"email": "d@client.example"})
    fake.throttle, fake.daily = 1, True  # the daily limit is spent: the run stops, nothing lost
    stats = await poll_forms(core)
    assert stats.taken == 0
    async with core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None and conn.status == "active"
    stats = await poll_forms(core)
    assert stats.taken == 1
    assert [x.email for x in await leads(core)] == ["c@client.example", "d@client.example"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_expired_token_marks_the_connection(core: Core, fake: HubSpotFake) -> None:
    form = fake.add_form()
    conn_id = await connect(core, fake, [form])
    async with core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None
        conn.credentials = {"password": "revoked-token"}
    fake.submit(form, {"email": "e@client.example"})
    await poll_forms(core)
    async with core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None and conn.status == "auth_expired"
        assert await s.scalar(select(func.count()).select_from(Lead)) == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_form_named_late_reads_back_thirty_days_at_most(core: Core, fake: HubSpotFake) -> None:
    form = fake.add_form()
    conn_id = await connect(core, fake, [form])
    now = core.clock()
    async with core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None
        conn.created_at = now - timedelta(days=60)
    fake.submit(form, {"email": "stale@client.example"}, at_ms=int((now - timedelta(days=40)).timestamp() * 1000))
    fake.submit(form, {"email": "recent@client.example"}, at_ms=int((now - timedelta(days=10)).timestamp() * 1000))
    stats = await poll_forms(core)
    assert stats.taken == 1
    assert [x.email for x in await leads(core)] == ["recent@client.example"]
