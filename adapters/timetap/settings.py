"""TimeTap's own settings (its environment variables), read through `HostSettings.section`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["TimeTapSettings", "timetap_settings"]


class TimeTapSettings(BaseSettings):
    """The TimeTap API (or a loopback fake)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    timetap_api_url: str = Field(default="https://api.timetap.com/live", alias="CLINICBOT_TIMETAP_API_URL")

    @field_validator("timetap_api_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)


def timetap_settings(host: HostSettings) -> TimeTapSettings:
    """This server's TimeTap settings."""
    return host.section(TimeTapSettings)
