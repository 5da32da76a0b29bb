"""Contract tests per capability, over every registered integration and what it declares.

A capability an integration declares must behave as the core expects; one it does not declare is
never asked for. New integrations are covered by registering them: nothing here names a platform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from pydantic_settings import BaseSettings

from sync.contract import ProviderError, Refused
from sync.contract.integration import CONNECT_KINDS, ROLES, Channel, WebhookRequest
from sync.integrations import registry
from sync.runtime.settings import Settings

NAMES = registry.names()


def bare_settings(cls: type[BaseSettings] | None) -> Settings:
    """Settings with nothing configured: every integration section at its defaults."""
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    return base.with_sections(cls(_env_file=None)) if cls is not None else base  # type: ignore[call-arg]


def variables(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads."""
    out = set()
    for name, info in cls.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        out |= {str(c) for c in choices} if choices else {info.alias or name}
    return out


@dataclass
class RecordingDesk:
    """A ChannelDesk that knows no channel and records every request the handler makes."""

    connection_id: int = 7
    asked: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def channel(self, channel_id: str) -> Channel | None:
        self.asked.append(channel_id)
        return None

    async def sync(self, channel: Channel, reason: str) -> None:
        self.requested.append(f"sync {reason}")

    async def renew_soon(self, channel: Channel) -> None:
        self.requested.append("renew")

    async def forget(self, channel: Channel) -> None:
        self.requested.append("forget")

    async def channels(self) -> list[Channel]:
        return []

    async def first_delivery(self, key: str) -> bool:
        self.requested.append(f"remember {key}")
        return True


@pytest.mark.parametrize("name", NAMES)
def test_connect_is_declared_completely(name: str) -> None:
    integration = registry.get(name)
    spec = integration.connect
    assert spec.kinds and set(spec.kinds) <= set(CONNECT_KINDS)
    assert spec.primary_role in ROLES and spec.other_role in ROLES
    if spec.kind in ("credentials", "feed_url"):
        assert spec.steps, "chat explains the steps of a connect finished on the command line"
    if "oauth2" in spec.kinds:
        assert spec.oauth is not None and integration.settings is not None and integration.configured is not None
        assert spec.setup_hint
    if "tenant_consent" in spec.kinds:
        assert spec.tenant is not None and spec.client_id is not None
    for option in spec.options:
        assert option.flag.startswith("--") and (option.default is None or not option.choices
                                                  or option.default in option.choices)


@pytest.mark.parametrize("name", NAMES)
async def test_an_unconfigured_sign_in_is_refused_naming_its_variables(name: str) -> None:
    integration = registry.get(name)
    if integration.connect.oauth is None:
        pytest.skip(f"{name} does not connect by sign-in")
    assert integration.settings is not None
    host = bare_settings(integration.settings)
    assert not integration.is_configured(host)
    with pytest.raises(Refused) as refused:
        await integration.connect.oauth.begin(host, redirect_uri="https://clinic.example.org/cb", options={})
    assert any(var in str(refused.value) for var in variables(integration.settings)), str(refused.value)


@pytest.mark.parametrize("name", NAMES)
def test_settings_read_their_own_variables_with_defaults(name: str) -> None:
    cls = registry.get(name).settings
    if cls is None:
        pytest.skip(f"{name} needs no settings")
    section = bare_settings(cls).section(cls)
    assert isinstance(section, cls)
    assert all(v.isidentifier() for v in variables(cls))


@pytest.mark.parametrize("name", NAMES)
def test_push_channels_say_their_margin_and_api(name: str) -> None:
    push = registry.get(name).push_channels
    if push is None:
        pytest.skip(f"{name} has no push channels")
    integration = registry.get(name)
    assert timedelta(0) < push.renew_margin < timedelta(days=7)
    assert urlsplit(push.api_url(bare_settings(integration.settings))).scheme in ("http", "https")
    assert integration.signed_webhooks is not None, "a channel's notifications need a webhook handler"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "request_",
    [
        WebhookRequest("POST", {}, {}, b""),
        WebhookRequest("POST", {"content-type": "application/json"}, {}, b"\xff\xfe not json"),
        WebhookRequest("POST", {"x-any": "thing"}, {}, b'{"value": [{"subscriptionId": 1}]}'),
    ],
    ids=["empty", "garbage", "malformed"],
)
async def test_signed_webhooks_refuse_what_they_cannot_verify(name: str, request_: WebhookRequest) -> None:
    hooks = registry.get(name).signed_webhooks
    if hooks is None:
        pytest.skip(f"{name} has no signed webhooks")
    assert hooks.max_body > 0
    desk = RecordingDesk()
    answer = await hooks.handle(request_, desk)
    assert 400 <= answer.status < 500 and desk.requested == []


@pytest.mark.parametrize("name", NAMES)
def test_calendar_capability_refuses_what_it_cannot_open(name: str) -> None:
    """open_calendar never reaches the network; a remote id it cannot use is Refused, not a crash."""
    from sync.contract import ConnectionInfo

    slot = registry.get(name).calendars
    if slot is None:
        pytest.skip(f"{name} has no calendars")
    info = ConnectionInfo(name, "someone", {}, None)
    try:
        provider = slot.open_calendar(info, "not a calendar id \x00", bare_settings(registry.get(name).settings))
    except ProviderError:
        return
    assert provider.name and provider.capabilities is not None
