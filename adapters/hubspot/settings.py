"""HubSpot's own settings (its environment variables), read through `HostSettings.section`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["SCOPES", "HubSpotSettings", "hubspot_settings"]

#: What clinicbot asks for at sign-in: contacts and the activities logged on them (meetings need the
#: contacts scopes), the owners (practitioners), the schema scope to add the visit-key property, and
#: `forms` to read form submissions as leads.
SCOPES = ("oauth", "crm.objects.contacts.read", "crm.objects.contacts.write", "crm.objects.owners.read",
          "crm.schemas.contacts.write", "forms")


class HubSpotSettings(BaseSettings):
    """The HubSpot API and sign-in hosts (or loopback fakes), and the public app clinicbot signs in with."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    hubspot_api_url: str = Field(default="https://api.hubapi.com", alias="CLINICBOT_HUBSPOT_API_URL")
    hubspot_auth_url: str = Field(default="https://app.hubspot.com", alias="CLINICBOT_HUBSPOT_AUTH_URL")
    hubspot_client_id: str | None = Field(default=None, alias="CLINICBOT_HUBSPOT_CLIENT_ID")
    hubspot_client_secret: str | None = Field(default=None, alias="CLINICBOT_HUBSPOT_CLIENT_SECRET")

    @field_validator("hubspot_api_url", "hubspot_auth_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.hubspot_client_id and self.hubspot_client_secret)


def hubspot_settings(host: HostSettings) -> HubSpotSettings:
    """This server's HubSpot settings."""
    return host.section(HubSpotSettings)
