"""/api/messages authentication: real Activity JSON over HTTP, tokens signed by the test's own key."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from sync.store.model import ChatIdentity
from tests.bot.teams.conftest import APP_ID, Teams, activity


async def _identities(t: Teams) -> int:
    async with t.core.store.session() as session:
        return int(await session.scalar(select(func.count()).select_from(ChatIdentity)) or 0)


async def _rejected(t: Teams, token: str | None) -> None:
    status, body = await t.post(activity(t.connector.service_url, text="help"), token=token)
    assert status == 401, body
    assert t.connector.recorded.calls == []
    assert await _identities(t) == 0, "a rejected activity must not create anyone"


async def test_no_token_is_rejected(teams: Teams) -> None:
    await _rejected(teams, None)


async def test_token_signed_by_another_key_is_rejected(teams: Teams) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    await _rejected(teams, teams.token(key=forger))


async def test_expired_token_is_rejected(teams: Teams) -> None:
    # botbuilder allows 5 minutes of clock skew; this one expired an hour ago.
    await _rejected(teams, teams.token(expires_in=-3600))


async def test_token_for_another_bot_is_rejected(teams: Teams) -> None:
    await _rejected(teams, teams.token(audience="9b9b9b9b-0000-4000-8000-000000000000"))


async def test_token_from_another_issuer_is_rejected(teams: Teams) -> None:
    await _rejected(teams, teams.token(issuer="https://sts.windows.net/someone-else/"))


async def test_token_for_another_service_url_is_rejected(teams: Teams) -> None:
    await _rejected(teams, teams.token(service_url="https://smba.evil.example/"))


async def test_token_with_unknown_key_id_is_rejected(teams: Teams) -> None:
    await _rejected(teams, teams.token(kid="not-published"))


async def test_valid_token_runs_the_turn_and_replies_with_the_bots_own_token(teams: Teams) -> None:
    act = activity(teams.connector.service_url, text="help")
    status, _ = await teams.post(act)
    assert status in (200, 201)
    replies = teams.connector.recorded.activities(act["conversation"]["id"])
    assert len(replies) == 1
    card = replies[0]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert replies[0]["replyToId"] == act["id"]
    # The fake connector only accepts tokens its token endpoint issued to our app id and secret.
    assert teams.connector.recorded.rejected == 0
    assert teams.connector.recorded.token_requests == 1


async def test_token_is_reused_across_turns(teams: Teams) -> None:
    for _ in range(3):
        status, _ = await teams.post(activity(teams.connector.service_url, text="help"))
        assert status in (200, 201)
    assert teams.connector.recorded.token_requests == 1
    assert len(teams.connector.recorded.activities()) == 3


async def test_malformed_requests_get_clear_errors(teams: Teams) -> None:
    url = teams.url + "/api/messages"
    async with teams.session.post(url, data="not json", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
    async with teams.session.post(url, data="x", headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 415
    status, _ = await teams.post({"type": "message", "text": "help"})
    assert status == 400
    assert teams.connector.recorded.calls == []


async def test_auth_off_warns_on_readyz_and_accepts_unsigned_activities(teams_open: Teams) -> None:
    async with teams_open.session.get(teams_open.url + "/readyz") as resp:
        body = await resp.json()
    assert any("Teams authentication is OFF" in w for w in body["warnings"])
    assert body["components"]["teams"] == "enabled"
    status, _ = await teams_open.post(activity(teams_open.connector.service_url, text="help"), token=None)
    assert status in (200, 201)
    assert len(teams_open.connector.recorded.activities()) == 1
    assert teams_open.connector.recorded.token_requests == 0


async def test_auth_on_has_no_warning(teams: Teams) -> None:
    async with teams.session.get(teams.url + "/readyz") as resp:
        body = await resp.json()
    assert not any("Teams" in w for w in body["warnings"])
    assert APP_ID not in str(body)
