"""clinicbot settings, read from the environment or a `.env` file and validated at start.

The core's variables are declared here; each integration declares its own in its folder (its
settings class), read through `Settings.section(cls)`. The registry checks every section at start,
so a wrong value anywhere stops the server with one line naming the variable, and `clinicbot doctor`
reports on all of them (or on those named with `--integration`). `clinicbot db` reads the core's only.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import check_http_url as _check_http_url

__all__ = ["ConfigError", "Settings", "config_error", "load_settings"]

S = TypeVar("S", bound=BaseSettings)

DEFAULT_SQLITE_FILE = "clinicbot.sqlite3"


class ConfigError(Exception):
    """A setting is wrong; the message is one line naming the variable."""


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
    #: Connections each process keeps open to the database (and up to 10 more for a burst): with
    #: several replicas on PostgreSQL, replicas x (this + 10) must stay under max_connections.
    database_pool_size: int = Field(default=20, alias="CLINICBOT_DATABASE_POOL_SIZE", ge=1, le=200)
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
    #: A connection whose syncs fail this long (since its last success) raises an alarm in chat.
    alarm_failing_minutes: int = Field(default=60, alias="CLINICBOT_ALARM_FAILING_MINUTES", ge=1, le=10080)
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
    #: The Microsoft identity platform (national clouds): Teams' authority and admin-consent page.
    login_url: str = Field(default="https://login.microsoftonline.com", alias="CLINICBOT_LOGIN_URL")
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

    #: Integration settings sections already read (class -> instance); see `section`.
    _sections: dict[type[BaseSettings], BaseSettings] = PrivateAttr(default_factory=dict)

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
        "slack_api_url", "slack_oauth_url", "login_url", "botframework_openid_url", "botframework_token_url",
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

    def section(self, cls: type[S]) -> S:
        """The integration settings of class `cls`: given by `with_sections`, else read from the environment once.

        Raises ConfigError naming the variable when a value is wrong.
        """
        found = self._sections.get(cls)
        if found is None:
            try:
                found = cls()
            except ValidationError as exc:
                raise config_error(exc, cls) from None
            self._sections[cls] = found
        assert isinstance(found, cls)
        return found

    def with_sections(self, *sections: BaseSettings) -> Settings:
        """A copy of these settings that uses the given integration settings instead of the environment's."""
        copy = self.model_copy()
        copy._sections = {**self._sections, **{type(s): s for s in sections}}
        return copy

    def model_copy(self, *, update: Any = None, deep: bool = False) -> Settings:
        """A copy (as pydantic's), whose integration sections are its own dict, not shared with this one."""
        copy = super().model_copy(update=update, deep=deep)
        copy._sections = dict(self._sections)
        return copy

    def base_url(self) -> str:
        """The URL the outside world reaches this server at (for OAuth redirects and webhooks)."""
        return self.public_url or f"http://{self.host}:{self.port}"


def _variable(cls: type[BaseSettings], name: str) -> str:
    """The environment variable a settings field is read from (its alias, or its first validation alias)."""
    field = cls.model_fields.get(name)
    if field is None:
        return name
    if field.alias:
        return field.alias
    choices = getattr(field.validation_alias, "choices", None)
    if choices:
        return str(choices[0])
    if isinstance(field.validation_alias, str):
        return field.validation_alias
    return name


def config_error(exc: ValidationError, cls: type[BaseSettings]) -> ConfigError:
    """One line naming the variable of the first wrong value of a settings class."""
    err = exc.errors()[0]
    loc = str(err["loc"][0]) if err["loc"] else "?"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return ConfigError(f"{_variable(cls, loc)}: {msg}")


def load_settings(**overrides: object) -> Settings:
    """Read settings; a wrong value raises ConfigError with one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise config_error(exc, Settings) from None
