"""Zoho Calendar's own settings: the app registration and the per-data-centre hosts (templates with `{dc}`)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["ZohoSettings", "zoho_settings"]


class ZohoSettings(BaseSettings):
    """Zoho's OAuth client, and where its accounts and calendar hosts are for a data centre `{dc}`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    zoho_client_id: str | None = Field(default=None, alias="CLINICBOT_ZOHO_CLIENT_ID")
    zoho_client_secret: str | None = Field(default=None, alias="CLINICBOT_ZOHO_CLIENT_SECRET")
    #: `{dc}` is the data centre's domain suffix: com, eu, in, com.au, jp, uk, sa.
    zoho_accounts_url: str = Field(default="https://accounts.zoho.{dc}", alias="CLINICBOT_ZOHO_ACCOUNTS_URL")
    zoho_api_url: str = Field(default="https://calendar.zoho.{dc}", alias="CLINICBOT_ZOHO_API_URL")
    #: Where sign-in starts; Zoho sends the person's own data centre back with the callback.
    zoho_default_dc: str = Field(default="com", alias="CLINICBOT_ZOHO_DEFAULT_DC")
    #: How long to leave an account alone after Zoho's 429 when Zoho names no time (its temporary lock).
    zoho_lock_seconds: float = Field(default=300.0, alias="CLINICBOT_ZOHO_LOCK_SECONDS", gt=0, le=3600)

    @field_validator("zoho_accounts_url", "zoho_api_url")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{dc}" not in value:
            raise ValueError("must contain {dc}, the data centre (https://calendar.zoho.{dc})")
        checked = check_http_url(value.replace("{dc}", "com"), allow_none=False)
        assert checked is not None
        return value.rstrip("/")

    @property
    def enabled(self) -> bool:
        return bool(self.zoho_client_id and self.zoho_client_secret)

    def accounts(self, dc: str) -> str:
        return self.zoho_accounts_url.replace("{dc}", dc)

    def api(self, dc: str) -> str:
        return self.zoho_api_url.replace("{dc}", dc)


def zoho_settings(host: HostSettings) -> ZohoSettings:
    """This server's Zoho settings."""
    return host.section(ZohoSettings)
