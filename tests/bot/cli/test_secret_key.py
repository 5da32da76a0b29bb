"""On PostgreSQL every replica must share one secret key: a missing key stops the process with one
line, and no key file is generated (one per replica would make the others' data unreadable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.runtime.settings import Settings
from tests.conftest import TEST_KEY
from tests.servers import run_cli


@pytest.mark.postgres
def test_postgres_without_a_secret_key_stops_with_one_line(backend: str, settings: Settings, tmp_path: Path) -> None:
    if backend != "postgres":
        pytest.skip("SQLite is single-process: it generates its key file")
    env = {"CLINICBOT_DATABASE_URL": settings.database_url, "CLINICBOT_DATABASE_SCHEMA": settings.database_schema}
    for command in (["db", "upgrade"], ["serve", "--port", "0"]):
        result = run_cli(command, tmp_path, env)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "CLINICBOT_SECRET_KEY is not set" in lines[0], result.stderr
    assert not (tmp_path / "clinicbot.key").exists(), "no per-replica key file"
    assert run_cli(["db", "upgrade"], tmp_path, {**env, "CLINICBOT_SECRET_KEY": TEST_KEY}).returncode == 0


def test_sqlite_still_generates_its_key_file(tmp_path: Path) -> None:
    assert run_cli(["db", "upgrade"], tmp_path).returncode == 0
    assert (tmp_path / "clinicbot.key").exists()
