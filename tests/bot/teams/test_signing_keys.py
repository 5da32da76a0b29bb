"""Inbound token checks fetch the Bot Framework signing keys without stalling the server."""

from __future__ import annotations

import asyncio
import functools

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.teams import signing_keys
from tests.bot.teams.conftest import Teams, activity

#: The issuer of Bot Framework Emulator (and skill) tokens: an Entra v1 token issuer.
EMULATOR_ISSUER = "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"


@functools.cache
def _forger() -> rsa.RSAPrivateKey:
    """A key nobody published, made once (2048-bit keys take a while on a loaded machine)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def _forged(t: Teams) -> int:
    status, _ = await t.post(activity(t.connector.service_url, text="help"), token=t.token(key=_forger()))
    return status


async def test_a_slow_metadata_endpoint_does_not_stall_the_server(teams: Teams) -> None:
    teams.connector.hold_metadata = True
    forged = asyncio.ensure_future(_forged(teams))
    while teams.connector.recorded.metadata_requests == 0:
        await asyncio.sleep(0.01)  # runs again only once the server gives the loop back
    async with teams.session.get(teams.url + "/healthz") as resp:
        assert resp.status == 200
    assert teams.connector.metadata_held.is_set(), "/healthz waited for the key fetch"
    teams.connector.release_metadata()
    assert await forged == 401


async def test_after_a_failed_fetch_forged_tokens_do_not_refetch_each_time(
    teams: Teams, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first back-off is 1 s: on a loaded machine five forged requests took longer than that.
    monkeypatch.setattr(signing_keys, "BACKOFF_FIRST", 3600.0)
    teams.connector.metadata_down = True
    statuses = [await _forged(teams) for _ in range(5)]
    assert statuses == [503] * 5
    assert teams.connector.recorded.metadata_requests == 1


async def test_keys_are_fetched_once_for_many_turns(teams: Teams) -> None:
    for _ in range(3):
        status, _ = await teams.post(activity(teams.connector.service_url, text="help"))
        assert status in (200, 201)
    assert teams.connector.recorded.key_requests <= 1


async def test_emulator_tokens_use_the_configured_metadata_url(teams: Teams) -> None:
    status, _ = await teams.post(
        activity(teams.connector.service_url, text="help"), token=teams.token(issuer=EMULATOR_ISSUER)
    )
    # Signed with the fake's key and published at the configured URL, but the audience/appid
    # claims of an emulator token are missing: rejected, after asking the configured URL only.
    assert status == 401
    assert teams.connector.recorded.metadata_requests >= 1
