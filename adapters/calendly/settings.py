"""Calendly's own settings (its environment variables), read through `HostSettings.section`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["CalendlySettings", "calendly_settings"]


class CalendlySettings(BaseSettings):
    """The Calendly API and its OAuth host (or loopback fakes), and the OAuth application clinicbot signs in with."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    calendly_api_url: str = Field(default="https://api.calendly.com", alias="CLINICBOT_CALENDLY_API_URL")
    calendly_auth_url: str = Field(default="https://auth.calendly.com", alias="CLINICBOT_CALENDLY_AUTH_URL")
    calendly_client_id: str | None = Field(default=None, alias="CLINICBOT_CALENDLY_CLIENT_ID")
    calendly_client_secret: str | None = Field(default=None, alias="CLINICBOT_CALENDLY_CLIENT_SECRET")

    @field_validator("calendly_api_url", "calendly_auth_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.calendly_client_id and self.calendly_client_secret)


def calendly_settings(host: HostSettings) -> CalendlySettings:
    """This server's Calendly settings."""
    return host.section(CalendlySettings)
