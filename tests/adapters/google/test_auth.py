"""OAuth 2 with PKCE against the fake: consent, code exchange, refresh, revocation."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from adapters.google.auth import GoogleTokens, authorization_request, exchange_code, pkce_pair, redirect_uri
from adapters.google.provider import GoogleCalendar
from adapters.google.settings import GoogleSettings
from sync.contract import AuthExpired, ConnectionInfo, Refused
from sync.contract.items import Window
from sync.runtime.settings import Settings
from tests.adapters.google.conftest import PRIMARY, Saved
from tests.adapters.google.fakes.google import GoogleFake


async def consent(url: str) -> dict[str, str]:
    """Follow the consent URL as the user's browser would; return the callback's query."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def test_pkce_challenge_is_s256_of_the_verifier() -> None:
    import base64
    import hashlib

    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert challenge == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    assert pkce_pair()[0] != verifier


async def test_consent_url_and_code_exchange(gsettings: Settings) -> None:
    request = authorization_request(gsettings)
    query = parse_qs(urlsplit(request.url).query)
    assert query["code_challenge_method"] == ["S256"] and query["access_type"] == ["offline"]
    assert query["state"] == [request.state] and query["redirect_uri"] == [redirect_uri(gsettings)]
    assert request.redirect_uri == "https://clinic.example.org/oauth/google/callback"
    callback = await consent(request.url)
    assert callback["state"] == request.state
    creds = await exchange_code(gsettings, callback["code"], request.code_verifier, request.redirect_uri)
    assert creds["refresh_token"] and creds["access_token"]
    # The code is single-use.
    with pytest.raises(AuthExpired):
        await exchange_code(gsettings, callback["code"], request.code_verifier, request.redirect_uri)


async def test_a_wrong_code_verifier_is_refused(gsettings: Settings) -> None:
    request = authorization_request(gsettings)
    callback = await consent(request.url)
    other_verifier, _ = pkce_pair()
    with pytest.raises(AuthExpired):
        await exchange_code(gsettings, callback["code"], other_verifier, request.redirect_uri)


async def test_wrong_client_secret_is_a_configuration_error(gsettings: Settings) -> None:
    request = authorization_request(gsettings)
    callback = await consent(request.url)
    own = gsettings.section(GoogleSettings)
    wrong = gsettings.with_sections(own.model_copy(update={"google_client_secret": "not-the-secret"}))
    with pytest.raises(Refused, match="CLINICBOT_GOOGLE_CLIENT"):
        await exchange_code(wrong, callback["code"], request.code_verifier, request.redirect_uri)


async def test_unconfigured_google_says_which_variables_to_set() -> None:
    bare = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(Refused, match="CLINICBOT_GOOGLE_CLIENT_ID"):
        authorization_request(bare)


async def test_expired_access_token_is_refreshed_and_saved(fake: GoogleFake, gsettings: Settings) -> None:
    saved = Saved()
    creds = fake.oauth.grant()
    conn = ConnectionInfo("google", PRIMARY, {}, {**creds, "expires_at": 0}, save_credentials=saved)
    tokens = GoogleTokens(gsettings, conn)
    token = await tokens.access_token()
    assert token != creds["access_token"]
    assert saved.documents[-1]["access_token"] == token
    assert saved.documents[-1]["refresh_token"] == creds["refresh_token"]
    assert await tokens.access_token() == token  # still fresh: no second refresh
    assert len(saved.documents) == 1


async def test_a_401_mid_session_refreshes_once(fake: GoogleFake, gsettings: Settings) -> None:
    saved = Saved()
    creds = fake.oauth.grant()
    conn = ConnectionInfo("google", PRIMARY, {}, {**creds, "expires_at": 4_000_000_000}, save_credentials=saved)
    calendar = GoogleCalendar(conn, PRIMARY, gsettings)
    try:
        fake.oauth.expire_access_tokens()  # Google revoked the access token early; our clock disagrees
        await calendar.free_busy(_window())
        assert len(saved.documents) == 1
    finally:
        await calendar.aclose()


async def test_revoked_refresh_token_raises_auth_expired(fake: GoogleFake, gsettings: Settings) -> None:
    saved = Saved()
    creds = fake.oauth.grant()
    conn = ConnectionInfo("google", PRIMARY, {}, creds, save_credentials=saved)
    calendar = GoogleCalendar(conn, PRIMARY, gsettings)
    try:
        fake.oauth.revoke(creds["refresh_token"])
        with pytest.raises(AuthExpired):
            await calendar.changes(None, _window())
        assert saved.documents == []
    finally:
        await calendar.aclose()


async def test_missing_refresh_token_raises_auth_expired(gsettings: Settings) -> None:
    conn = ConnectionInfo("google", PRIMARY, {}, {"access_token": "x", "expires_at": 0})
    with pytest.raises(AuthExpired):
        await GoogleTokens(gsettings, dataclasses.replace(conn)).access_token()


def _window() -> Window:
    return Window(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 12, 31, tzinfo=UTC))


@pytest.mark.parametrize("expires_in", ["soon", None, [], "nan", "inf", -5, True, "1e400"])
async def test_an_unreadable_expires_in_is_a_bad_payload(gsettings: Settings, expires_in: object) -> None:
    """A token endpoint answering `"expires_in":"soon"` is the provider's mistake, named, not a crash."""
    from sync.contract import BadPayload

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "ya29.x", "expires_in": expires_in, "token_type": "Bearer"})

    with pytest.raises(BadPayload, match="expires_in"):
        await exchange_code(gsettings, "code", "verifier", "https://clinic.example.org/cb",
                            transport=httpx.MockTransport(answer))
