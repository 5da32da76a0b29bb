"""Fixtures: a running fake Graph with its authority, and connections signed in through real MSAL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.graph import GraphTransports, open_calendar
from adapters.graph.auth import GraphAuthConfig, begin_sign_in, complete_sign_in
from adapters.graph.provider import GraphCalendar
from sync.contract import ConnectionInfo
from sync.runtime.settings import Settings
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.conftest import settings_with

CLIENT_ID = "00000000-aaaa-4bbb-8ccc-000000000001"
CLIENT_SECRET = "fake-secret-for-tests"
TENANT = "11111111-2222-4333-8444-555555555555"
REDIRECT = "http://127.0.0.1:3978/oauth/graph/callback"


@dataclass
class Saved:
    documents: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, document: dict[str, Any]) -> None:
        self.documents.append(document)


@pytest.fixture
async def fake() -> AsyncIterator[GraphFake]:
    graph = GraphFake()
    await graph.start()
    graph.login.register_app(CLIENT_ID, CLIENT_SECRET)
    try:
        yield graph
    finally:
        await graph.stop()


@pytest.fixture
def settings(fake: GraphFake) -> Settings:
    return settings_with(graph_url=fake.url, graph_client_id=CLIENT_ID, graph_client_secret=CLIENT_SECRET)


@pytest.fixture
def mailbox(fake: GraphFake) -> Mailbox:
    return fake.add_user("dr.lee@clinic.example", tenant_id=TENANT)


def transports(fake: GraphFake) -> GraphTransports:
    return GraphTransports(login=fake.login.http_client(fake.url))


async def sign_in(fake: GraphFake, settings: Settings, upn: str) -> dict[str, Any]:
    """The delegated credential document after `upn` signs in through MSAL's auth-code + PKCE flow."""
    config = GraphAuthConfig.from_settings(settings, http_client=fake.login.http_client(fake.url))
    start = await begin_sign_in(config, REDIRECT, state="st-1")
    return await complete_sign_in(config, start.flow, fake.login.approve(start.auth_uri, upn))


@pytest.fixture
async def delegated(fake: GraphFake, settings: Settings, mailbox: Mailbox) -> ConnectionInfo:
    creds = await sign_in(fake, settings, mailbox.user.upn)
    return ConnectionInfo(
        provider="graph",
        account=mailbox.user.upn,
        config={},
        credentials=creds,
        save_credentials=Saved(),
        transport=transports(fake),
    )


@pytest.fixture
async def calendar(delegated: ConnectionInfo, settings: Settings) -> AsyncIterator[GraphCalendar]:
    provider = open_calendar(delegated, "me/calendar", settings)
    try:
        yield provider
    finally:
        await provider.aclose()
