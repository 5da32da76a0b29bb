"""Each bad setting stops the server with one line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.integrations import registry
from sync.runtime.settings import ConfigError, Settings, load_settings
from tests.servers import run_cli

BAD = [
    ("CLINICBOT_PORT", "99999", "CLINICBOT_PORT"),
    ("CLINICBOT_PORT", "eighty", "CLINICBOT_PORT"),
    ("CLINICBOT_PUBLIC_URL", "not a url", "CLINICBOT_PUBLIC_URL"),
    ("CLINICBOT_DATABASE_URL", "mysql://x@y/z", "CLINICBOT_DATABASE_URL"),
    ("CLINICBOT_DATABASE_URL", "::nonsense::", "CLINICBOT_DATABASE_URL"),
    ("CLINICBOT_SECRET_KEY", "too-short", "CLINICBOT_SECRET_KEY"),
    ("CLINICBOT_LOG_FORMAT", "xml", "CLINICBOT_LOG_FORMAT"),
    ("SLACK_API_URL", "ftp://slack", "SLACK_API_URL"),
    ("CLINICBOT_GRAPH_URL", "graph.microsoft.com", "CLINICBOT_GRAPH_URL"),
    ("CLINICBOT_GOOGLE_AUTH_URL", "accounts.google.com", "CLINICBOT_GOOGLE_AUTH_URL"),
    ("MicrosoftAppType", "Whatever", "MicrosoftAppType"),
]


def load_checked(**overrides: object) -> Settings:
    """What the server and the CLI do at start: the core's settings, then every integration's."""
    settings = load_settings(**overrides)
    registry.check_settings(settings)
    return settings


@pytest.mark.parametrize(("var", "value", "named"), BAD)
def test_bad_setting_is_one_line_naming_it(var: str, value: str, named: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_checked(_env_file=None)
    text = str(err.value)
    assert text.startswith(named + ":")
    assert "\n" not in text


def test_server_stops_with_one_line(tmp_path: Path) -> None:
    result = run_cli(["serve"], tmp_path, {"CLINICBOT_PORT": "70000"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "CLINICBOT_PORT" in result.stderr
    assert not (tmp_path / "clinicbot.sqlite3").exists()


def test_server_stops_with_one_line_for_an_integration_setting(tmp_path: Path) -> None:
    result = run_cli(["serve"], tmp_path, {"CLINICBOT_GOOGLE_API_URL": "www.googleapis.com"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.strip().startswith("error: CLINICBOT_GOOGLE_API_URL: must be an http(s) URL")
    assert not (tmp_path / "clinicbot.sqlite3").exists()


def test_sync_drivers_are_forced_async(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINICBOT_DATABASE_URL", "postgresql://postgres@db/clinic")
    assert load_settings(_env_file=None).database_url.startswith("postgresql+asyncpg://")


def test_missing_optional_secrets_disable_features(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "MicrosoftAppId"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings(_env_file=None)
    assert not s.slack_enabled and not s.teams_auth_enabled
