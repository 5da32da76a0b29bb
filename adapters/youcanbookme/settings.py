"""YouCanBookMe's own settings (its environment variables), read through `HostSettings.section`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["YouCanBookMeSettings", "youcanbookme_settings"]


class YouCanBookMeSettings(BaseSettings):
    """The YouCanBookMe API (or a loopback fake); the account id follows it in each path."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    youcanbookme_api_url: str = Field(default="https://api.youcanbook.me", alias="CLINICBOT_YOUCANBOOKME_API_URL")

    @field_validator("youcanbookme_api_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)


def youcanbookme_settings(host: HostSettings) -> YouCanBookMeSettings:
    """This server's YouCanBookMe settings."""
    return host.section(YouCanBookMeSettings)
