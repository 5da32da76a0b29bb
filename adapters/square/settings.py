"""Square's own settings (its environment variables), read through `HostSettings.section`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["SQUARE_VERSION", "SquareSettings", "square_settings"]

#: The Square-Version header sent with every call (the API version the mapping was written against).
SQUARE_VERSION = "2026-08-19"


class SquareSettings(BaseSettings):
    """The Square API (production, sandbox, or a loopback fake) and the OAuth application clinicbot signs in with."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    square_api_url: str = Field(default="https://connect.squareup.com", alias="CLINICBOT_SQUARE_API_URL")
    square_oauth_url: str = Field(default="https://connect.squareup.com", alias="CLINICBOT_SQUARE_OAUTH_URL")
    square_client_id: str | None = Field(default=None, alias="CLINICBOT_SQUARE_CLIENT_ID")
    square_client_secret: str | None = Field(default=None, alias="CLINICBOT_SQUARE_CLIENT_SECRET")

    @field_validator("square_api_url", "square_oauth_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @property
    def enabled(self) -> bool:
        return bool(self.square_client_id and self.square_client_secret)


def square_settings(host: HostSettings) -> SquareSettings:
    """This server's Square settings."""
    return host.section(SquareSettings)
