"""The server starts with nothing configured, answers health and readiness, and stops cleanly."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from sync.runtime.core import Core
from sync.runtime.settings import Settings
from tests.conftest import drop_schema
from tests.servers import run_cli, running_server


def test_starts_from_empty_folder_with_no_environment(tmp_path: Path) -> None:
    with running_server(tmp_path) as base:
        assert httpx.get(base + "/healthz").json() == {"status": "ok"}
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert "X-Request-Id" in ready.headers
        metrics = httpx.get(base + "/metrics").text
        assert 'route="/healthz",status="200"' in metrics
    key = tmp_path / "clinicbot.key"
    assert key.exists() and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert (tmp_path / "clinicbot.sqlite3").exists()


def test_request_id_is_echoed(tmp_path: Path) -> None:
    with running_server(tmp_path) as base:
        r = httpx.get(base + "/healthz", headers={"X-Request-Id": "abc123"})
        assert r.headers["X-Request-Id"] == "abc123"


@pytest.mark.postgres
async def test_starts_on_postgres_and_refuses_a_schema_that_is_behind(
    backend: str, settings: Settings, tmp_path: Path
) -> None:
    if backend != "postgres":
        pytest.skip("PostgreSQL only")
    env = {
        "CLINICBOT_DATABASE_URL": settings.database_url,
        "CLINICBOT_DATABASE_SCHEMA": settings.database_schema,
        "CLINICBOT_SECRET_KEY": settings.secret_key or "",
    }
    refused = run_cli(["serve"], tmp_path, env)
    assert refused.returncode == 2
    assert "run `clinicbot db upgrade`" in refused.stderr
    assert [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")] == [
        refused.stderr.strip().splitlines()[-1]
    ]
    assert "Traceback" not in refused.stderr
    upgraded = run_cli(["db", "upgrade"], tmp_path, env)
    assert upgraded.returncode == 0, upgraded.stderr
    with running_server(tmp_path, env) as base:
        body = httpx.get(base + "/readyz").json()
        assert body["status"] == "ready"
        assert body["schema"]["current"] == body["schema"]["head"]
    await drop_schema(settings)


def test_json_logs_carry_no_secrets(tmp_path: Path) -> None:
    secret = "s3cr3t-password-value"
    env = {"CLINICBOT_LOG_FORMAT": "json", "MicrosoftAppPassword": secret, "CLINICBOT_LOG_LEVEL": "DEBUG"}
    import subprocess
    import sys

    from tests.servers import clean_env, free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path,
        env=clean_env({**env, "CLINICBOT_PORT": str(port)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        import time

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert secret not in out
    import json

    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, out
    docs = [json.loads(line) for line in lines]
    assert all("request_id" in d and "level" in d for d in docs)


async def test_an_over_long_header_line_is_a_400_without_an_error_log(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    """A client's malformed request is the client's problem: answered 400, logged below ERROR."""
    import asyncio
    import logging

    from aiohttp.test_utils import TestServer

    from bot.app import build_app

    quiet = core.settings.model_copy(update={"scheduler_enabled": False})
    server = TestServer(build_app(quiet, core=core), host="127.0.0.1")
    await server.start_server()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n")
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
    finally:
        await server.close()
    assert b" 400 " in status_line
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
