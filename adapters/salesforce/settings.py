"""Salesforce's own settings (its environment variables), read through `HostSettings.section`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["SalesforceSettings", "salesforce_settings"]


class SalesforceSettings(BaseSettings):
    """Salesforce's login hosts (production and sandbox, or loopback fakes), the connected app, the API
    version and the Event field holding clinicbot's visit key."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    salesforce_login_url: str = Field(default="https://login.salesforce.com", alias="CLINICBOT_SALESFORCE_LOGIN_URL")
    salesforce_sandbox_url: str = Field(default="https://test.salesforce.com",
                                        alias="CLINICBOT_SALESFORCE_SANDBOX_URL")
    salesforce_client_id: str | None = Field(default=None, alias="CLINICBOT_SALESFORCE_CLIENT_ID")
    salesforce_client_secret: str | None = Field(default=None, alias="CLINICBOT_SALESFORCE_CLIENT_SECRET")
    salesforce_api_version: str = Field(default="v60.0", alias="CLINICBOT_SALESFORCE_API_VERSION")
    #: A custom text field on Activity marked "External ID" (and unique), made once by the org's admin.
    salesforce_external_id_field: str = Field(default="Clinicbot_Visit_Key__c",
                                              alias="CLINICBOT_SALESFORCE_EXTERNAL_ID_FIELD")

    @field_validator("salesforce_login_url", "salesforce_sandbox_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @field_validator("salesforce_api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        digits = value.removeprefix("v")
        major, _, minor = digits.partition(".")
        if not (major.isdigit() and minor.isdigit()):
            raise ValueError(f"an API version looks like v60.0, got {value!r}")
        return f"v{digits}"

    @field_validator("salesforce_external_id_field")
    @classmethod
    def _field(cls, value: str) -> str:
        if not value.endswith("__c") or not value.replace("_", "").isalnum():
            raise ValueError(f"a custom field's API name ends in __c, got {value!r}")
        return value

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.salesforce_client_id and self.salesforce_client_secret)


def salesforce_settings(host: HostSettings) -> SalesforceSettings:
    """This server's Salesforce settings."""
    return host.section(SalesforceSettings)
