"""`connect google`: the OAuth state is single-use, expires, and a finished flow stores the
connection with encrypted credentials and the calendars Google lists; the CLI starts the flow in
table or JSON form. (The state and rows are the core's, sync.integrations.connect; Google's flow is
plain data.)"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from adapters.google.settings import GoogleSettings
from bot.cli.sync_commands import connection
from sync.contract import Refused
from sync.integrations.connect import begin_oauth, finish_oauth
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.services.practices import create_practice
from sync.store.model import Calendar, Connection, OAuthState, utcnow
from tests.adapters.google.conftest import PRIMARY
from tests.adapters.google.fakes.google import GoogleFake
from tests.conftest import TEST_KEY


async def consent(url: str) -> dict[str, str]:
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def google_settings(core: Core, fake: GoogleFake) -> Settings:
    return core.settings.with_sections(
        GoogleSettings(  # type: ignore[call-arg]
            _env_file=None,
            google_api_url=fake.url,
            google_oauth_url=fake.url,
            google_auth_url=f"{fake.url}/o/oauth2/v2/auth",
            google_client_id=fake.oauth.client_id,
            google_client_secret=fake.oauth.client_secret,
        )
    )


async def test_connect_round_trip_stores_encrypted_credentials(core: Core, fake: GoogleFake) -> None:
    core.settings = google_settings(core, fake)
    async with core.store.session() as s:
        practice = await create_practice(s, "Lee Clinic", "Europe/London", "test")
    pending = await begin_oauth(
        core, "google", practice_id=practice.id, chat_identity_id=None, options={"send_updates": "externalOnly"}
    )
    assert pending.expires_at - utcnow() <= timedelta(minutes=10)
    callback = await consent(pending.url)
    assert callback["state"] == pending.state
    conn = await finish_oauth(core, "google", {"state": pending.state, "code": callback["code"]})
    async with core.store.session() as s:
        stored = await s.get(Connection, conn.connection_id)
        assert stored is not None and stored.account == PRIMARY
        assert stored.config["send_updates"] == "externalOnly"
        assert stored.credentials["refresh_token"] in fake.oauth.refresh_tokens
        raw = (await s.execute(text("SELECT credentials FROM connection"))).scalar_one()
        assert "refresh_token" not in raw and stored.credentials["refresh_token"] not in raw
        # The calendars Google lists are stored with the connection: the primary one is the source.
        cals = {c.remote_id: c for c in (await s.scalars(select(Calendar))).all()}
        assert cals[PRIMARY].role == "source" and not cals[PRIMARY].read_only
        assert all(c.role == "busy" for rid, c in cals.items() if rid != PRIMARY)
    with pytest.raises(Refused, match="already used"):
        await finish_oauth(core, "google", {"state": pending.state, "code": callback["code"]})


async def test_unknown_and_expired_states_change_nothing(core: Core, fake: GoogleFake) -> None:
    core.settings = google_settings(core, fake)
    async with core.store.session() as s:
        practice = await create_practice(s, "Ash Clinic", "UTC", "test")
    pending = await begin_oauth(core, "google", practice_id=practice.id, chat_identity_id=None)
    callback = await consent(pending.url)
    with pytest.raises(Refused, match="unknown"):
        await finish_oauth(core, "google", {"state": "forged", "code": callback["code"]})
    with pytest.raises(Refused, match="expired"):
        await finish_oauth(
            core, "google", {"state": pending.state, "code": callback["code"]}, now=utcnow() + timedelta(minutes=11)
        )
    async with core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(Connection)) == 0
        assert (await s.scalar(select(OAuthState.used_at))) is None


def test_cli_starts_the_flow_as_json_or_table(tmp_path: Path) -> None:
    env = {
        "CLINICBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite3'}",
        "CLINICBOT_SECRET_KEY": TEST_KEY,
        "CLINICBOT_PUBLIC_URL": "https://clinic.example.org",
        "CLINICBOT_GOOGLE_CLIENT_ID": "id.apps.googleusercontent.com",
        "CLINICBOT_GOOGLE_CLIENT_SECRET": "s3cret",
    }
    runner = CliRunner()
    started = runner.invoke(connection, ["add", "google", "--send-updates", "all", "--json"], env=env)
    assert started.exit_code == 0, started.output
    body = json.loads(started.output)
    query = parse_qs(urlsplit(body["url"]).query)
    assert query["state"] == [body["state"]] and query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["https://clinic.example.org/oauth/google/callback"]
    table = runner.invoke(connection, ["add", "google"], env=env)
    assert table.exit_code == 0 and "accounts.google.com" in table.output
    half = runner.invoke(connection, ["add", "google", "--state", "x"], env=env)
    assert half.exit_code == 1 and "both --state and --code" in half.output
    unconfigured = runner.invoke(connection, ["add", "google"], env={**env, "CLINICBOT_GOOGLE_CLIENT_ID": ""})
    assert unconfigured.exit_code == 1 and "CLINICBOT_GOOGLE_CLIENT_ID" in unconfigured.output
