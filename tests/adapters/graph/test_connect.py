"""Connecting Outlook: single-use expiring sign-in state, encrypted credentials, the consent-gated
application connection, practitioner mapping, and the CLI commands."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from adapters.graph import INTEGRATION
from adapters.graph.connection import GraphTransports
from adapters.graph.oauth import GraphTenant
from bot.cli import main
from bot.cli.graph_commands import practitioner
from bot.cli.sync_commands import connection
from sync.boot import open_core
from sync.contract import Refused
from sync.contract.integration import Connected
from sync.integrations import registry
from sync.integrations.connect import begin_oauth, finish_oauth
from sync.runtime.core import Core
from sync.services.connections import add_practice_wide, map_identities
from sync.services.practices import add_practitioner, create_practice
from sync.services.staff import identities_of, set_identities
from sync.store.model import (
    Calendar,
    Connection,
    ConsentGrant,
    ExternalIdentity,
    OAuthState,
    Practitioner,
    utcnow,
)
from tests.adapters.graph.conftest import CLIENT_ID, CLIENT_SECRET, TENANT
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.conftest import TEST_KEY, make_settings

OID = "6f1c9a52-1d4e-4a7b-9a0f-2f3b4c5d6e7f"


async def map_practitioner(s: Any, lee: Practitioner, *, upn: str | None, object_id: str | None) -> list[int]:
    """The core's Graph mapping (what `clinicbot practitioner map` calls); the ids of the updated connections."""
    mapped = await map_identities(s, "graph", lee, {"upn": upn, "object_id": object_id}, actor="test")
    return mapped.connections_updated


@pytest.fixture
async def db(fake: GraphFake, tmp_path: Path) -> AsyncIterator[Core]:
    from sync.store.migrate import upgrade

    settings = make_settings(
        "sqlite",
        tmp_path,
        graph_url=fake.url,
        graph_client_id=CLIENT_ID,
        graph_client_secret=CLIENT_SECRET,
        public_url="https://clinic.example.org",
    )
    core = open_core(settings)
    core.services.http_transport = GraphTransports(login=fake.login.http_client(fake.url))
    await upgrade(core.store)
    try:
        yield core
    finally:
        await core.close()


async def test_connect_round_trip_is_single_use_and_encrypted(db: Core, fake: GraphFake, mailbox: Mailbox) -> None:
    async with db.store.session() as s:
        practice = await create_practice(s, "Lee Clinic", "Europe/London", "test")
    pending = await begin_oauth(db, "graph", practice_id=practice.id, chat_identity_id=None)
    assert "redirect_uri=https%3A%2F%2Fclinic.example.org%2Foauth%2Fgraph%2Fcallback" in pending.url
    answer = fake.login.approve(pending.url, mailbox.user.upn)
    assert answer["state"] == pending.state
    conn = await finish_oauth(db, "graph", answer)
    assert conn.account == mailbox.user.upn and conn.config["mode"] == "delegated"
    # The mailbox's calendars are stored with it: the default one is the source.
    assert [(c["url"], c["role"]) for c in conn.calendars] == [("me/calendar", "source")]
    async with db.store.session() as s:
        raw = await s.scalar(text("SELECT credentials FROM connection"))
        assert raw.startswith("v1:") and "token_cache" not in raw and "refresh" not in raw
        stored = await s.scalar(select(Connection))
        assert stored is not None and stored.credentials["kind"] == "delegated"
    with pytest.raises(Refused, match="already used"):
        await finish_oauth(db, "graph", answer)
    async with db.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(Connection)) == 1


async def test_expired_or_forged_state_changes_nothing(db: Core, fake: GraphFake, mailbox: Mailbox) -> None:
    async with db.store.session() as s:
        practice = await create_practice(s, "Lee Clinic", "Europe/London", "test")
    pending = await begin_oauth(
        db, "graph", practice_id=practice.id, chat_identity_id=None, now=utcnow() - timedelta(minutes=11)
    )
    answer = fake.login.approve(pending.url, mailbox.user.upn)
    for params, message in [(answer, "expired"), ({**answer, "state": "forged"}, "unknown")]:
        with pytest.raises(Refused, match=message):
            await finish_oauth(db, "graph", params)
    async with db.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(Connection)) == 0
        assert (await s.scalar(select(OAuthState.used_at))) is None


async def test_application_connection_needs_consent_and_follows_mapping(db: Core) -> None:
    async with db.store.session() as s:
        practice = await create_practice(s, "Lee Clinic", "Europe/London", "test")
        lee = await add_practitioner(s, practice, "Dr Ann Lee", email="ann@clinic.example", tz=None, actor="test")
        await add_practitioner(s, practice, "Dr Unmapped", email=None, tz=None, actor="test")
    with pytest.raises(Refused, match="consent"):
        await add_practice_wide(db, "graph", None, TENANT, actor="test")
    async with db.store.session() as s:
        s.add(ConsentGrant(practice_id=practice.id, tenant_id="someone-else", granted=True))
    with pytest.raises(Refused, match="consent"):
        await add_practice_wide(db, "graph", None, TENANT, actor="test")
    async with db.store.session() as s:
        s.add(ConsentGrant(practice_id=practice.id, tenant_id=TENANT, granted=True))
    saved = await add_practice_wide(db, "graph", None, TENANT.upper(), actor="test")
    async with db.store.session() as s:
        conn = await s.get(Connection, saved.connection_id)
        assert conn is not None
        lee = await s.get(Practitioner, lee.id)
        assert conn.config == {"mode": "application", "tenant_id": TENANT, "users": []}
        assert conn.credentials == {"kind": "application", "tenant_id": TENANT}
        changed = await map_practitioner(s, lee, upn="Ann.Lee@Clinic.Example", object_id=None)
        assert changed == [conn.id] and conn.config["users"] == ["ann.lee@clinic.example"]
        await map_practitioner(s, lee, upn="ann.lee@clinic.example", object_id=OID.upper())
        assert conn.config["users"] == [OID]  # the object id wins: it survives a rename
        assert await identities_of(s, [lee.id], "graph") == {lee.id: {"upn": "ann.lee@clinic.example", "object_id": OID}}
        for upn, oid in [("not a upn", None), (None, "not-a-guid")]:
            with pytest.raises(Refused):
                await map_practitioner(s, lee, upn=upn, object_id=oid)
        await map_practitioner(s, lee, upn=None, object_id=None)
        assert conn.config["users"] == []  # neither: opted out of practice-wide sync
        assert await identities_of(s, [lee.id], "graph") == {}
    async with db.store.session() as s:
        stored = await s.scalar(select(Connection))
        assert stored is not None and stored.config["users"] == []


def test_graph_identities_are_checked_and_normalised() -> None:
    """The Graph integration's staff-identities slot: pure checks the core calls before storing."""
    slot = INTEGRATION.staff_identities
    assert slot is not None and slot.kinds == ("upn", "object_id")
    assert slot.clean({"upn": "Ann.Lee@Clinic.Example", "object_id": OID.upper()}) == {
        "upn": "ann.lee@clinic.example", "object_id": OID}
    assert slot.clean({"upn": None, "object_id": None}) == {}
    for bad in ({"upn": "not a upn"}, {"upn": "x" * 321 + "@a.b"}, {"object_id": "not-a-guid"}, {"email": "a@b.c"}):
        with pytest.raises(Refused):
            slot.clean(bad)


def test_cli_maps_practitioners_and_adds_the_application_connection(tmp_path: Path) -> None:
    env = {
        "CLINICBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite3'}",
        "CLINICBOT_SECRET_KEY": TEST_KEY,
        "CLINICBOT_GRAPH_CLIENT_ID": CLIENT_ID,
        "CLINICBOT_GRAPH_CLIENT_SECRET": CLIENT_SECRET,
    }
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    added = runner.invoke(main, ["practitioner", "add", "Dr Ann Lee", "--json"], env=env)
    assert added.exit_code == 0, added.output
    ref = str(json.loads(added.output)["id"])
    mapped = runner.invoke(practitioner, ["map", ref, "--upn", "ann@clinic.example", "--json"], env=env)
    assert mapped.exit_code == 0, mapped.output
    assert json.loads(mapped.output) | {"connections_updated": 0} == {
        "id": int(ref),
        "name": "Dr Ann Lee",
        "upn": "ann@clinic.example",
        "object_id": None,
        "outlook_sync": "on",
        "connections_updated": 0,
    }
    listed = runner.invoke(main, ["practitioner", "list", "--json"], env=env)
    assert [r["upn"] for r in json.loads(listed.output)] == ["ann@clinic.example"]
    assert "ann@clinic.example" in runner.invoke(main, ["practitioner", "list"], env=env).output
    table = runner.invoke(practitioner, ["map", ref, "--clear"], env=env)
    assert table.exit_code == 0 and "opted out" in table.output
    assert runner.invoke(practitioner, ["map", ref], env=env).exit_code == 1
    assert "not an Entra object id" in runner.invoke(practitioner, ["map", ref, "--object-id", "x"], env=env).output
    assert runner.invoke(practitioner, ["map", "nobody", "--upn", "a@b.c"], env=env).exit_code == 1
    refused = runner.invoke(connection, ["add", "graph", "--application", "--tenant", TENANT], env=env)
    assert refused.exit_code == 1 and "consent" in refused.output
    assert "--tenant" in runner.invoke(connection, ["add", "graph", "--application"], env=env).output


class _TenantThroughFake(GraphTenant):
    """GraphTenant with MSAL routed to the fake authority (the CLI has no transport option)."""

    def __init__(self, fake: GraphFake) -> None:
        self.fake = fake

    async def connect(self, host: Any, *, tenant: str, staff: Any, transport: Any = None) -> Connected:
        routed = GraphTransports(login=self.fake.login.http_client(self.fake.url))
        return await super().connect(host, tenant=tenant, staff=staff, transport=routed)


async def test_cli_application_connection_after_consent(
    db: Core, fake: GraphFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_user("ann@clinic.example", tenant_id=TENANT)
    fake.login.grant_admin_consent(TENANT)
    through_fake = replace(INTEGRATION, connect=replace(INTEGRATION.connect, tenant=_TenantThroughFake(fake)))
    monkeypatch.setitem(registry.OVERRIDES, "graph", through_fake)
    async with db.store.session() as s:
        practice = await create_practice(s, "Lee Clinic", "Europe/London", "test")
        lee = await add_practitioner(s, practice, "Dr Ann Lee", email=None, tz=None, actor="test")
        await set_identities(s, lee, "graph", {"upn": "ann@clinic.example"}, actor="test")
        s.add(ConsentGrant(practice_id=practice.id, tenant_id=TENANT, granted=True))
    env = {
        "CLINICBOT_DATABASE_URL": db.settings.database_url,
        "CLINICBOT_SECRET_KEY": TEST_KEY,
        "CLINICBOT_GRAPH_CLIENT_ID": CLIENT_ID,
        "CLINICBOT_GRAPH_CLIENT_SECRET": CLIENT_SECRET,
        "CLINICBOT_GRAPH_URL": fake.url,
    }
    await db.close()
    result = await asyncio.to_thread(
        CliRunner().invoke,
        connection,
        ["add", "graph", "--practice", "Lee Clinic", "--application", "--tenant", TENANT, "--json"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {k: out[k] for k in ("id", "provider", "account", "status")} == {
        "id": 1,
        "provider": "graph",
        "account": f"tenant {TENANT}",
        "status": "active",
    }
    assert out["config"]["mode"] == "application" and len(out["config"]["users"]) == 1
    # The mapped practitioner's calendar is stored with the connection, its default one as a source.
    assert [(c["url"], c["role"]) for c in out["calendars"]] == [("users/ann@clinic.example/calendar", "source")]
    core = open_core(db.settings)
    try:
        async with core.store.session() as s:
            assert (await s.scalar(select(ExternalIdentity.external_id).where(
                ExternalIdentity.kind == "upn"))) == "ann@clinic.example"
            assert (await s.scalar(select(func.count()).select_from(Calendar))) == 1
    finally:
        await core.close()


async def test_cli_staff_map_graph_updates_the_application_connection(db: Core) -> None:
    """`clinicbot staff map graph UPN PRACTITIONER` is `map_identities`: the practice-wide connection then
    addresses the practitioner, and unmapping the last identity opts them out again."""
    async with db.store.session() as s:
        practice = await create_practice(s, "Lee Clinic", "Europe/London", "test")
        lee = await add_practitioner(s, practice, "Dr Ann Lee", email=None, tz=None, actor="test")
        s.add(ConsentGrant(practice_id=practice.id, tenant_id=TENANT, granted=True))
    saved = await add_practice_wide(db, "graph", None, TENANT, actor="test")
    env = {
        "CLINICBOT_DATABASE_URL": db.settings.database_url,
        "CLINICBOT_SECRET_KEY": TEST_KEY,
        "CLINICBOT_GRAPH_CLIENT_ID": CLIENT_ID,
        "CLINICBOT_GRAPH_CLIENT_SECRET": CLIENT_SECRET,
    }

    async def users() -> list[str]:
        async with db.store.session() as s:
            conn = await s.get(Connection, saved.connection_id)
            assert conn is not None
            return list(conn.config["users"])

    assert await users() == []
    mapped = await asyncio.to_thread(
        CliRunner().invoke, main, ["staff", "map", "graph", "Ann.Lee@Clinic.Example", str(lee.id), "--json"], env=env)
    assert mapped.exit_code == 0, mapped.output
    assert json.loads(mapped.output)["external_id"] == "ann.lee@clinic.example"
    assert await users() == ["ann.lee@clinic.example"]
    unmapped = await asyncio.to_thread(
        CliRunner().invoke, main, ["staff", "unmap", "graph", "ann.lee@clinic.example"], env=env)
    assert unmapped.exit_code == 0, unmapped.output
    assert await users() == []
