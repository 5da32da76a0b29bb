"""Nylas's own settings (its environment variables), read through `HostSettings.section`."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["NylasSettings", "nylas_settings"]


class NylasSettings(BaseSettings):
    """The Nylas v3 API of the application's region, and the application clinicbot signs in with.

    The API key is the application's: it reads every grant of the application, so it is a server
    secret (never typed into chat). The EU region is https://api.eu.nylas.com; a key used against the
    wrong region is answered 401.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    nylas_api_url: str = Field(
        default="https://api.us.nylas.com",
        validation_alias=AliasChoices("CLINICBOT_NYLAS_API_URL", "NYLAS_API_URI", "nylas_api_url"),
    )
    nylas_client_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLINICBOT_NYLAS_CLIENT_ID", "NYLAS_CLIENT_ID", "nylas_client_id"),
    )
    nylas_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLINICBOT_NYLAS_API_KEY", "NYLAS_API_KEY", "nylas_api_key"),
    )
    #: Which provider the hosted sign-in offers (google, microsoft, icloud, ews...); empty: the person picks.
    nylas_provider: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLINICBOT_NYLAS_PROVIDER", "nylas_provider"),
    )

    @field_validator("nylas_api_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @property
    def enabled(self) -> bool:
        """Hosted sign-in needs the application's client id and its API key."""
        return bool(self.nylas_client_id and self.nylas_api_key)


def nylas_settings(host: HostSettings) -> NylasSettings:
    """This server's Nylas settings."""
    return host.section(NylasSettings)
