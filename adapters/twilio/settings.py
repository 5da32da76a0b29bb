"""The Twilio account clinicbot texts clients from (its environment variables)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.contract.integration import HostSettings, check_http_url

__all__ = ["DEFAULT_BASE_URL", "TwilioSettings", "twilio_settings"]

DEFAULT_BASE_URL = "https://api.twilio.com"
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_KEY_SID = re.compile(r"SK[0-9a-fA-F]{32}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class TwilioSettings(BaseSettings):
    """Account SID, its credentials (the auth token, or an API key and secret) and who texts come from.

    The auth token is also what Twilio signs inbound webhooks with (X-Twilio-Signature): without it
    clinicbot cannot check a client's STOP, and refuses every inbound message.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    twilio_account_sid: str | None = Field(default=None, alias="CLINICBOT_TWILIO_ACCOUNT_SID")
    twilio_auth_token: str | None = Field(default=None, alias="CLINICBOT_TWILIO_AUTH_TOKEN")
    twilio_api_key: str | None = Field(default=None, alias="CLINICBOT_TWILIO_API_KEY")
    twilio_api_secret: str | None = Field(default=None, alias="CLINICBOT_TWILIO_API_SECRET")
    #: The sending number (E.164) or alphanumeric sender id; or a Messaging Service instead.
    twilio_from: str | None = Field(default=None, alias="CLINICBOT_TWILIO_FROM")
    twilio_messaging_service_sid: str | None = Field(default=None, alias="CLINICBOT_TWILIO_MESSAGING_SERVICE_SID")
    twilio_base_url: str = Field(default=DEFAULT_BASE_URL, alias="CLINICBOT_TWILIO_BASE_URL")
    twilio_timeout: float = Field(default=20.0, alias="CLINICBOT_TWILIO_TIMEOUT", gt=0, le=120)

    @field_validator("twilio_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value, allow_none=False) or DEFAULT_BASE_URL

    @field_validator("twilio_account_sid")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value and not _ACCOUNT_SID.fullmatch(value):
            raise ValueError("must be the account SID (AC followed by 32 hex digits)")
        return value or None

    @field_validator("twilio_api_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value and not _KEY_SID.fullmatch(value):
            raise ValueError("must be an API key SID (SK followed by 32 hex digits)")
        return value or None

    @field_validator("twilio_messaging_service_sid")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        if value and not _SERVICE_SID.fullmatch(value):
            raise ValueError("must be a Messaging Service SID (MG followed by 32 hex digits)")
        return value or None

    @field_validator("twilio_from")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if not value:
            return None
        value = value.strip()
        if value.startswith("+") and not _E164.fullmatch(value):
            raise ValueError("must be a number in E.164 form (+447700900123) or an alphanumeric sender id")
        if not value.startswith("+") and not re.fullmatch(r"[A-Za-z0-9 ]{1,11}", value):
            raise ValueError("an alphanumeric sender id has at most 11 letters, digits and spaces")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> TwilioSettings:
        if bool(self.twilio_api_key) != bool(self.twilio_api_secret):
            raise ValueError("CLINICBOT_TWILIO_API_KEY and CLINICBOT_TWILIO_API_SECRET go together")
        return self

    @property
    def login(self) -> tuple[str, str] | None:
        """The basic-auth pair: an API key and its secret when set, else the account SID and auth token."""
        if self.twilio_api_key and self.twilio_api_secret:
            return self.twilio_api_key, self.twilio_api_secret
        if self.twilio_account_sid and self.twilio_auth_token:
            return self.twilio_account_sid, self.twilio_auth_token
        return None

    @property
    def enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.login
                    and (self.twilio_from or self.twilio_messaging_service_sid))


def twilio_settings(host: HostSettings) -> TwilioSettings:
    return host.section(TwilioSettings)
