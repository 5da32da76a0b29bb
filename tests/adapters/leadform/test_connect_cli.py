"""`clinicbot connection add leadform`: the form's address and secret, printed once, kept encrypted."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from bot.cli import main
from bot.commands.grammar import parse
from bot.commands.handlers import handle
from bot.views import ConnectInfo, Error
from sync.runtime.core import Core
from sync.services.identities import Actor
from sync.services.practices import create_practice
from sync.store.model import AuditEntry, Connection, WebhookSubscription
from tests.conftest import TEST_KEY


async def test_the_cli_makes_a_form_with_its_secret_shown_once(core: Core, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the CLI reads its database from the environment; the PostgreSQL run uses a schema")
    async with core.store.session() as s:
        await create_practice(s, "Northside Clinic", "Europe/London", actor="cli:test")
    env = {"CLINICBOT_DATABASE_URL": core.settings.database_url, "CLINICBOT_SECRET_KEY": TEST_KEY,
           "CLINICBOT_PUBLIC_URL": "https://bot.northside.example"}
    runner = CliRunner()
    done = await asyncio.to_thread(runner.invoke, main, ["connection", "add", "leadform", "--json"], env=env)
    assert done.exit_code == 0, done.output
    made = json.loads(done.output)
    assert made["url"] == f"https://bot.northside.example/webhooks/leadform/{made['id']}"
    assert len(made["secret"]) >= 43
    async with core.store.session() as s:
        conn = await s.get(Connection, made["id"])
        assert conn is not None and (conn.provider, conn.sync_enabled) == ("leadform", False)
        [channel] = (await s.scalars(select(WebhookSubscription))).all()
        assert channel.secret == made["secret"]
        raw = (await s.execute(text("SELECT secret FROM webhook_subscription"))).scalar_one()
        assert made["secret"] not in str(raw)
    human = await asyncio.to_thread(runner.invoke, main, ["connection", "add", "leadform"], env=env)
    assert human.exit_code == 0 and "shown this once" in human.output and "/webhooks/leadform/" in human.output


async def test_connect_leadform_in_chat_is_for_admins_and_status_shows_the_form(core: Core) -> None:
    async with core.store.session() as s:
        practice = await create_practice(s, "Northside Clinic", "Europe/London", actor="cli:test")
    admin = Actor(practice.id, 1, "slack", "Ann", frozenset({"admin"}), "T1", "UA")
    staff = Actor(practice.id, 2, "slack", "Sam", frozenset({"staff"}), "T1", "US")
    refused = await handle(core, staff, parse("connect leadform"))
    assert isinstance(refused, Error) and refused.kind == "forbidden"
    shown = await handle(core, admin, parse("connect webform"))
    assert isinstance(shown, ConnectInfo) and shown.url is None
    assert any("Signing secret (shown this once" in step for step in shown.steps)
    status = await handle(core, admin, parse("status"))
    assert not isinstance(status, Error), status
    async with core.store.session() as s:
        [entry] = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "connection.add"))).all()
    assert entry.actor == "slack:T1/UA" and entry.details["provider"] == "leadform"
