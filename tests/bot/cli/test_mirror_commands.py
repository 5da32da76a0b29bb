"""`clinicbot practice mirror-edits`: shows and sets what a hand edit of a calendar copy does, audited."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.conftest import TEST_KEY


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> click.Group:
    import bot.cli as cli_pkg

    monkeypatch.setenv("CLINICBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.setenv("CLINICBOT_SECRET_KEY", TEST_KEY)
    monkeypatch.chdir(tmp_path)
    return cli_pkg.main


def run(cli: click.Group, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_show_set_and_audit(cli: click.Group) -> None:
    run(cli, "practice", "create", "North Clinic", "--tz", "UTC")
    shown = json.loads(run(cli, "practice", "mirror-edits", "--practice", "North Clinic", "--json"))
    assert (shown["mirror_edits"], shown["changed"]) == ("card", False)
    out = run(cli, "practice", "mirror-edits", "follow", "--practice", "North Clinic")
    assert "Calendar edits for North Clinic is now 'follow'" in out and "always get the card" in out
    again = json.loads(run(cli, "practice", "mirror-edits", "follow", "--practice", "North Clinic", "--json"))
    assert (again["before"], again["changed"]) == ("follow", False)
    refused = run(cli, "practice", "mirror-edits", "always", code=2)
    assert "'always' is not one of 'card', 'follow', 'keep'" in refused
    missing = run(cli, "practice", "mirror-edits", "keep", "--practice", "Nowhere", code=1)
    assert "no practice named 'Nowhere'" in missing
    entries = [json.loads(line) for line in run(cli, "audit", "export", "--format", "jsonl").splitlines() if line]
    changes = [e for e in entries if e["action"] == "practice.mirror_edits"]
    assert [(c["before"], c["after"]) for c in changes] == [({"mirror_edits": "card"}, {"mirror_edits": "follow"})]
    assert changes[0]["actor"].startswith("cli:")
