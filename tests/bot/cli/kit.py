"""The `clinicbot` command group on a fresh SQLite database in a temporary folder, and a runner that checks
the exit code, shared by the CLI tests (here and in tests/bot/commands)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.conftest import TEST_KEY

__all__ = ["cli", "cli_env", "run"]


def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database file and the test key in the environment, the temporary folder as the working directory."""
    monkeypatch.setenv("CLINICBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.setenv("CLINICBOT_SECRET_KEY", TEST_KEY)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> click.Group:
    import bot.cli as cli_pkg

    cli_env(tmp_path, monkeypatch)

    return cli_pkg.main


def run(cli: click.Group, *args: str, code: int = 0) -> str:
    """Invoke `cli` with `args`; the exit code must be `code`. The output."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output
