"""Setmore's own settings (its environment variables), read through `HostSettings.section`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["SetmoreSettings", "setmore_settings"]


class SetmoreSettings(BaseSettings):
    """The Setmore API (or a loopback fake)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    setmore_api_url: str = Field(default="https://developer.setmore.com/api/v1", alias="CLINICBOT_SETMORE_API_URL")

    @field_validator("setmore_api_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)


def setmore_settings(host: HostSettings) -> SetmoreSettings:
    """This server's Setmore settings."""
    return host.section(SetmoreSettings)
