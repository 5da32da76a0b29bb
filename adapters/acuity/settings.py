"""Acuity Scheduling's own settings (its environment variables), read through `HostSettings.section`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["AcuitySettings", "acuity_settings"]


class AcuitySettings(BaseSettings):
    """The Acuity API and its OAuth host (or a loopback fake), its request rate, and the OAuth application."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    acuity_api_url: str = Field(default="https://acuityscheduling.com", alias="CLINICBOT_ACUITY_API_URL")
    #: Acuity allows 10 requests a second (and 20 connections) per IP address; 9 keeps a margin for clock jitter.
    acuity_requests_per_second: float = Field(default=9.0, alias="CLINICBOT_ACUITY_REQUESTS_PER_SECOND", gt=0)
    acuity_auth_url: str = Field(default="https://acuityscheduling.com", alias="CLINICBOT_ACUITY_AUTH_URL")
    acuity_client_id: str | None = Field(default=None, alias="CLINICBOT_ACUITY_CLIENT_ID")
    acuity_client_secret: str | None = Field(default=None, alias="CLINICBOT_ACUITY_CLIENT_SECRET")

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.acuity_client_id and self.acuity_client_secret)

    @field_validator("acuity_api_url", "acuity_auth_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)


def acuity_settings(host: HostSettings) -> AcuitySettings:
    """This server's Acuity settings."""
    return host.section(AcuitySettings)
