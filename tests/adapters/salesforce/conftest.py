"""Fixtures: a running fake Salesforce org, and clients of it with a session it issued."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.kit.http import RetryPolicy
from adapters.salesforce.client import SalesforceClient
from tests.adapters.salesforce.fakes.salesforce import SalesforceFake

EXT = "Clinicbot_Visit_Key__c"


@pytest.fixture
async def fake() -> AsyncIterator[SalesforceFake]:
    server = await SalesforceFake().start()
    try:
        yield server
    finally:
        await server.close()


def client_for(fake: SalesforceFake, token: str | None = None) -> SalesforceClient:
    return SalesforceClient(fake.url, fake.version, token or fake.session(),
                            policy=RetryPolicy(attempts=1, backoff=0.0, max_wait=0.0))
