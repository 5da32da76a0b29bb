"""Google Calendar's own settings (its environment variables), read through `HostSettings.section`."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["GoogleSettings", "google_settings"]


class GoogleSettings(BaseSettings):
    """The Google Calendar and Drive APIs, the OAuth endpoints, and the OAuth client clinicbot signs in with."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    google_api_url: str = Field(default="https://www.googleapis.com", alias="CLINICBOT_GOOGLE_API_URL")
    #: Google Drive, where the files attached to Calendar events live (read only with `--attachments on`).
    google_drive_url: str = Field(default="https://www.googleapis.com", alias="CLINICBOT_GOOGLE_DRIVE_URL")
    google_oauth_url: str = Field(default="https://oauth2.googleapis.com", alias="CLINICBOT_GOOGLE_OAUTH_URL")
    google_auth_url: str = Field(
        default="https://accounts.google.com/o/oauth2/v2/auth", alias="CLINICBOT_GOOGLE_AUTH_URL"
    )
    google_client_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLINICBOT_GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_ID", "google_client_id"),
    )
    google_client_secret: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLINICBOT_GOOGLE_CLIENT_SECRET", "GOOGLE_CLIENT_SECRET", "google_client_secret"),
    )

    @field_validator("google_api_url", "google_drive_url", "google_oauth_url", "google_auth_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @property
    def enabled(self) -> bool:
        return bool(self.google_client_id and self.google_client_secret)


def google_settings(host: HostSettings) -> GoogleSettings:
    """This server's Google settings."""
    return host.section(GoogleSettings)
