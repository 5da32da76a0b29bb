"""SimplyBook.me's own settings (its environment variables), read through `HostSettings.section`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["SimplyBookSettings", "simplybook_settings"]


class SimplyBookSettings(BaseSettings):
    """The SimplyBook.me JSON-RPC API (or a loopback fake); `/login` and `/admin` are below it."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    simplybook_api_url: str = Field(default="https://user-api.simplybook.me", alias="CLINICBOT_SIMPLYBOOK_API_URL")
    #: Seconds a login token is used before clinicbot logs in again (SimplyBook's last about an hour).
    simplybook_token_seconds: int = Field(default=3000, alias="CLINICBOT_SIMPLYBOOK_TOKEN_SECONDS", ge=60, le=3600)

    @field_validator("simplybook_api_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)


def simplybook_settings(host: HostSettings) -> SimplyBookSettings:
    """This server's SimplyBook.me settings."""
    return host.section(SimplyBookSettings)
