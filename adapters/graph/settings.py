"""Microsoft Graph's own settings (its environment variables), read through `HostSettings.section`.

Without its own app registration, Graph signs in with the Teams bot's (MicrosoftAppId and
MicrosoftAppPassword), so a Teams-only clinic needs no second registration.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["GraphSettings", "graph_settings"]


class GraphSettings(BaseSettings):
    """Microsoft Graph and its authority (national clouds), and the app registration it signs in with."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    graph_url: str = Field(default="https://graph.microsoft.com", alias="CLINICBOT_GRAPH_URL")
    login_url: str = Field(default="https://login.microsoftonline.com", alias="CLINICBOT_LOGIN_URL")
    graph_client_id: str | None = Field(
        default=None, validation_alias=AliasChoices("CLINICBOT_GRAPH_CLIENT_ID", "GRAPH_CLIENT_ID", "graph_client_id")
    )
    graph_client_secret: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLINICBOT_GRAPH_CLIENT_SECRET", "GRAPH_CLIENT_SECRET", "graph_client_secret"),
    )
    #: The Teams bot's registration, used when Graph has none of its own.
    microsoft_app_id: str | None = Field(default=None, alias="MicrosoftAppId")
    microsoft_app_password: str | None = Field(default=None, alias="MicrosoftAppPassword")

    @field_validator("graph_url", "login_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @property
    def enabled(self) -> bool:
        return bool(self.graph_client_id or self.microsoft_app_id)


def graph_settings(host: HostSettings) -> GraphSettings:
    """This server's Graph settings."""
    return host.section(GraphSettings)
