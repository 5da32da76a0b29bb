"""clinicbot settings, read from the environment or a `.env` file and validated at start.

Every variable any part of clinicbot reads is declared here, so that a wrong value stops the
server with one line naming it, and `clinicbot doctor` can report on all of them.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ConfigError", "Settings", "load_settings"]

DEFAULT_SQLITE_FILE = "clinicbot.sqlite3"


class ConfigError(Exception):
    """A setting is wrong; the message is one line naming the variable."""


def _check_http_url(value: str | None, *, allow_none: bool = True) -> str | None:
    if value is None or value == "":
        if allow_none:
            return None
        raise ValueError("must be an http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL like https://example.org, got {value!r}")
    return value.rstrip("/")


class Settings(BaseSettings):
    """All of clinicbot's configuration. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # --- clinicbot core ---------------------------------------------------------------------
    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{DEFAULT_SQLITE_FILE}", alias="CLINICBOT_DATABASE_URL"
    )
    #: PostgreSQL schema to live in (search_path); empty means the server default.
    database_schema: str = Field(default="", alias="CLINICBOT_DATABASE_SCHEMA")
    host: str = Field(default="127.0.0.1", alias="CLINICBOT_HOST")
    port: int = Field(default=3978, alias="CLINICBOT_PORT", ge=1, le=65535)
    public_url: str | None = Field(default=None, alias="CLINICBOT_PUBLIC_URL")
    secret_key: str | None = Field(default=None, alias="CLINICBOT_SECRET_KEY")
    #: Where the embedded default keeps its generated key when CLINICBOT_SECRET_KEY is unset.
    secret_key_file: Path = Field(default=Path("clinicbot.key"), alias="CLINICBOT_SECRET_KEY_FILE")
    log_format: Literal["text", "json"] = Field(default="text", alias="CLINICBOT_LOG_FORMAT")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="CLINICBOT_LOG_LEVEL")
    #: Let the SQLite default bring its schema up to date at start.
    auto_migrate: bool = Field(default=True, alias="CLINICBOT_AUTO_MIGRATE")
    #: Default sync window, in days back and ahead of today.
    sync_days_back: int = Field(default=30, alias="CLINICBOT_SYNC_DAYS_BACK", ge=0, le=3650)
    sync_days_ahead: int = Field(default=180, alias="CLINICBOT_SYNC_DAYS_AHEAD", ge=1, le=3650)
    #: How often connections are polled for changes when no push notification arrived (0: never).
    sync_poll_seconds: int = Field(default=300, alias="CLINICBOT_SYNC_POLL_SECONDS", ge=0, le=86400)
    #: Allow ICS feeds and CalDAV servers on private, loopback and link-local addresses.
    allow_private_urls: bool = Field(default=False, alias="CLINICBOT_ALLOW_PRIVATE_URLS")
    #: Run the reminder scheduler in this process (subject to the leader lock).
    scheduler_enabled: bool = Field(default=True, alias="CLINICBOT_SCHEDULER")
    #: A reminder missed while the server was down is still sent (marked late) within this many seconds.
    reminder_grace_seconds: int = Field(default=900, alias="CLINICBOT_REMINDER_GRACE_SECONDS", ge=0, le=86400)
    #: Where the scheduled signed audit checkpoints are appended (besides the log); keep it out of the database's reach.
    audit_checkpoint_file: Path | None = Field(default=None, alias="CLINICBOT_AUDIT_CHECKPOINT_FILE")
    #: How often a signed checkpoint of the audit chain's head is exported.
    audit_checkpoint_seconds: int = Field(default=3600, alias="CLINICBOT_AUDIT_CHECKPOINT_SECONDS", ge=60, le=86400)

    # --- Microsoft Teams (Bot Framework) ----------------------------------------------------
    microsoft_app_id: str | None = Field(default=None, alias="MicrosoftAppId")
    microsoft_app_password: str | None = Field(default=None, alias="MicrosoftAppPassword")
    microsoft_app_type: Literal["MultiTenant", "SingleTenant", "UserAssignedMSI"] = Field(
        default="MultiTenant", alias="MicrosoftAppType"
    )
    microsoft_app_tenant_id: str | None = Field(default=None, alias="MicrosoftAppTenantId")
    #: Where botbuilder fetches the Bot Framework OpenID metadata (tests point it at a fake).
    botframework_openid_url: str | None = Field(default=None, alias="CLINICBOT_BOTFRAMEWORK_OPENID_URL")
    #: Token endpoint the bot uses to call the Bot Connector (tests point it at a fake).
    botframework_token_url: str | None = Field(default=None, alias="CLINICBOT_BOTFRAMEWORK_TOKEN_URL")

    # --- Slack --------------------------------------------------------------------------------
    slack_signing_secret: str | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_bot_token: str | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_client_id: str | None = Field(default=None, alias="SLACK_CLIENT_ID")
    slack_client_secret: str | None = Field(default=None, alias="SLACK_CLIENT_SECRET")
    slack_app_token: str | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api", alias="SLACK_API_URL")
    slack_oauth_url: str = Field(default="https://slack.com/oauth/v2/authorize", alias="SLACK_OAUTH_URL")

    # --- Microsoft Graph ------------------------------------------------------------------------
    graph_url: str = Field(default="https://graph.microsoft.com", alias="CLINICBOT_GRAPH_URL")
    login_url: str = Field(default="https://login.microsoftonline.com", alias="CLINICBOT_LOGIN_URL")
    graph_client_id: str | None = Field(
        default=None, validation_alias=AliasChoices("CLINICBOT_GRAPH_CLIENT_ID", "GRAPH_CLIENT_ID")
    )
    graph_client_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("CLINICBOT_GRAPH_CLIENT_SECRET", "GRAPH_CLIENT_SECRET")
    )

    # --- Google Calendar ----------------------------------------------------------------------
    google_api_url: str = Field(default="https://www.googleapis.com", alias="CLINICBOT_GOOGLE_API_URL")
    google_oauth_url: str = Field(default="https://oauth2.googleapis.com", alias="CLINICBOT_GOOGLE_OAUTH_URL")
    google_auth_url: str = Field(
        default="https://accounts.google.com/o/oauth2/v2/auth", alias="CLINICBOT_GOOGLE_AUTH_URL"
    )
    google_client_id: str | None = Field(
        default=None, validation_alias=AliasChoices("CLINICBOT_GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_ID")
    )
    google_client_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("CLINICBOT_GOOGLE_CLIENT_SECRET", "GOOGLE_CLIENT_SECRET")
    )

    # --- validation -------------------------------------------------------------------------------
    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"is not a database URL: {value!r} (try sqlite+aiosqlite:///clinicbot.sqlite3)") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"must be a sqlite or postgresql URL, got {url.get_backend_name()!r}")
        # Always use the async drivers, whatever the operator wrote.
        if url.get_backend_name() == "sqlite" and url.drivername != "sqlite+aiosqlite":
            url = url.set(drivername="sqlite+aiosqlite")
        if url.get_backend_name() == "postgresql" and url.drivername != "postgresql+asyncpg":
            url = url.set(drivername="postgresql+asyncpg")
        return url.render_as_string(hide_password=False)

    @field_validator("database_schema")
    @classmethod
    def _schema(cls, value: str) -> str:
        if value and not value.replace("_", "").isalnum():
            raise ValueError("must be a plain schema name (letters, digits, underscore)")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return _check_http_url(value)

    @field_validator(
        "slack_api_url", "slack_oauth_url", "graph_url", "login_url", "google_api_url",
        "google_oauth_url", "google_auth_url", "botframework_openid_url", "botframework_token_url",
    )
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return _check_http_url(value)

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            raw = base64.urlsafe_b64decode(value.encode() + b"=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ValueError(
                "must be 32 random bytes in URL-safe base64; make one with "
                "`python -c 'import secrets,base64;print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())'`"
            )
        return value

    # --- derived ----------------------------------------------------------------------------------
    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def teams_auth_enabled(self) -> bool:
        return bool(self.microsoft_app_id)

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_signing_secret) and bool(
            self.slack_bot_token or (self.slack_client_id and self.slack_client_secret) or self.slack_app_token
        )

    @property
    def graph_enabled(self) -> bool:
        return bool(self.graph_client_id or self.microsoft_app_id)

    @property
    def google_enabled(self) -> bool:
        return bool(self.google_client_id and self.google_client_secret)

    def base_url(self) -> str:
        """The URL the outside world reaches this server at (for OAuth redirects and webhooks)."""
        return self.public_url or f"http://{self.host}:{self.port}"


_ALIASES = {
    name: (field.alias or str(field.validation_alias.choices[0]) if field.validation_alias else field.alias)  # type: ignore[union-attr]
    for name, field in Settings.model_fields.items()
}


def load_settings(**overrides: object) -> Settings:
    """Read settings; a wrong value raises ConfigError with one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = str(err["loc"][0]) if err["loc"] else "?"
        var = _ALIASES.get(loc, loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{var}: {msg}") from None
