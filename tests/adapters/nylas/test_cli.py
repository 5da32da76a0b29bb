"""`clinicbot connection add nylas`: a grant the practice already has is added with the API key
(its calendars stored, an invalid grant refused with the reconnect advice), and without
--username the hosted sign-in starts (PKCE s256)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from click.testing import CliRunner

from bot.cli.sync_commands import connection
from sync.boot import open_core
from sync.services.practices import create_practice
from sync.store.migrate import upgrade
from tests.adapters.nylas.fakes.nylas import NylasFake
from tests.conftest import TEST_KEY, make_settings
from tests.servers import run_cli


async def cli(args: list[str], tmp_path: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI in a subprocess while this loop keeps serving the fake."""
    done = await asyncio.to_thread(run_cli, args, tmp_path, env)
    return done.returncode, done.stdout + done.stderr


async def test_an_existing_grant_is_added_with_the_api_key(tmp_path: Path, fake: NylasFake) -> None:
    settings = make_settings("sqlite", tmp_path)
    core = open_core(settings)
    await upgrade(core.store)
    async with core.store.session() as s:
        await create_practice(s, "Lee Clinic", "Europe/London", actor="cli:test")
    await core.close()
    env = {"CLINICBOT_SECRET_KEY": TEST_KEY, "CLINICBOT_DATABASE_URL": settings.database_url,
           "CLINICBOT_NYLAS_API_URL": fake.url, "CLINICBOT_NYLAS_API_KEY": fake.api_key}
    grant = fake.add_grant("outreach@work.example", "microsoft", calendars=2)
    expired = fake.add_grant("gone@work.example")
    expired.status = "invalid"

    code, out = await cli(["connection", "add", "nylas", "--username", grant.id, "--json"], tmp_path, env)
    assert code == 0, out
    added = json.loads(out)
    roles = {c["url"]: c["role"] for c in added["calendars"]}
    primary = next(c.id for c in grant.calendars.values() if c.primary)
    assert roles.pop(primary) == "mirror" and set(roles.values()) == {"busy"}

    code, out = await cli(["connection", "add", "nylas", "--username", expired.id], tmp_path, env)
    assert code == 1 and "Reconnect" in out, out


def test_without_a_grant_the_hosted_sign_in_starts(tmp_path: Path) -> None:
    env = {"CLINICBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite3'}",
           "CLINICBOT_SECRET_KEY": TEST_KEY, "CLINICBOT_PUBLIC_URL": "https://clinic.example.org",
           "CLINICBOT_NYLAS_CLIENT_ID": "client-1", "CLINICBOT_NYLAS_API_KEY": "nyk_v0_example"}
    runner = CliRunner()
    started = runner.invoke(connection, ["add", "nylas", "--json"], env=env)
    assert started.exit_code == 0, started.output
    body = json.loads(started.output)
    query = parse_qs(urlsplit(body["url"]).query)
    assert body["url"].startswith("https://api.us.nylas.com/v3/connect/auth?")
    assert query["code_challenge_method"] == ["s256"] and query["client_id"] == ["client-1"]
    assert query["redirect_uri"] == ["https://clinic.example.org/oauth/nylas/callback"]
    assert query["state"] == [body["state"]]
    unconfigured = runner.invoke(connection, ["add", "nylas"], env={**env, "CLINICBOT_NYLAS_API_KEY": ""})
    assert unconfigured.exit_code == 1 and "CLINICBOT_NYLAS_API_KEY" in unconfigured.output
