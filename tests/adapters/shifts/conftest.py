"""A running practice with its practice-wide Outlook connection (after consent) and the fake Graph it talks to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.graph import GraphTransports
from sync.boot import open_core
from sync.runtime.core import Core
from sync.services.connections import add_practice_wide
from sync.services.practices import create_practice
from sync.store.migrate import upgrade
from sync.store.model import ConsentGrant
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.adapters.graph.fakes.graph_throttle import ThrottlePolicy
from tests.conftest import drop_schema, make_settings

CLIENT_ID = "00000000-aaaa-4bbb-8ccc-000000000001"
CLIENT_SECRET = "fake-secret-for-tests"
TENANT = "11111111-2222-4333-8444-555555555555"
ZONE = "America/New_York"


@pytest.fixture
def throttle() -> ThrottlePolicy | None:
    return None


@pytest.fixture
async def fake(throttle: ThrottlePolicy | None) -> AsyncIterator[GraphFake]:
    graph = GraphFake(throttle=throttle)
    await graph.start()
    graph.login.register_app(CLIENT_ID, CLIENT_SECRET)
    graph.login.grant_admin_consent(TENANT)
    try:
        yield graph
    finally:
        await graph.stop()


@pytest.fixture
def core_overrides() -> dict[str, object]:
    """Extra settings for the core (a test that serves a loopback feed allows private URLs)."""
    return {}


@pytest.fixture
async def core(backend: str, fake: GraphFake, tmp_path: Path, core_overrides: dict[str, object]) -> AsyncIterator[Core]:
    settings = make_settings(backend, tmp_path, graph_url=fake.url, graph_client_id=CLIENT_ID,
                             graph_client_secret=CLIENT_SECRET, **core_overrides)
    c = open_core(settings)
    c.services.http_transport = GraphTransports(login=fake.login.http_client(fake.url))
    await upgrade(c.store)
    try:
        async with c.store.session() as s:
            practice = await create_practice(s, "Northside Clinic", ZONE, "test")
            # What the Teams `consent` flow records once the tenant's admin approved the app.
            s.add(ConsentGrant(practice_id=practice.id, tenant_id=TENANT, granted=True))
        await add_practice_wide(c, "graph", None, TENANT, actor="cli:admin")
        yield c
    finally:
        await c.close()
        await drop_schema(settings)


@pytest.fixture
def people(fake: GraphFake) -> dict[str, Mailbox]:
    return {name: fake.add_user(f"{name}@clinic.example", tenant_id=TENANT) for name in ("ann", "bob", "dee")}


