"""The SMTP server clinicbot sends client emails through (its environment variables)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings

__all__ = ["SmtpSettings", "smtp_settings"]


class SmtpSettings(BaseSettings):
    """Where client emails go out: host, port, login and the practice's sender address."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    smtp_host: str | None = Field(default=None, alias="CLINICBOT_SMTP_HOST")
    smtp_port: int = Field(default=587, alias="CLINICBOT_SMTP_PORT", ge=1, le=65535)
    #: starttls (port 587), tls (implicit TLS, port 465) or none (a relay on localhost only).
    smtp_security: Literal["starttls", "tls", "none"] = Field(default="starttls", alias="CLINICBOT_SMTP_SECURITY")
    smtp_username: str | None = Field(default=None, alias="CLINICBOT_SMTP_USERNAME")
    smtp_password: str | None = Field(default=None, alias="CLINICBOT_SMTP_PASSWORD")
    smtp_from: str | None = Field(default=None, alias="CLINICBOT_SMTP_FROM")
    smtp_timeout: float = Field(default=30.0, alias="CLINICBOT_SMTP_TIMEOUT", gt=0, le=300)

    @property
    def enabled(self) -> bool:
        return bool(self.smtp_host and self.smtp_from)


def smtp_settings(host: HostSettings) -> SmtpSettings:
    return host.section(SmtpSettings)
