"""MSAL through the fake authority: auth code + PKCE, refresh, revocation, client credentials, https."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme

from adapters.graph import discover, open_calendar
from adapters.graph.auth import GraphAuthConfig, begin_sign_in, complete_sign_in
from sync.contract import AuthExpired, ConnectionInfo, Refused
from sync.contract.items import Window
from sync.runtime.settings import Settings
from tests.adapters.graph.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT,
    TENANT,
    Saved,
    sign_in,
    transports,
)
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.conftest import settings_with

WINDOW = Window(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC))


async def test_sign_in_uses_the_real_common_authority_with_pkce(
    fake: GraphFake, settings: Settings, mailbox: Mailbox
) -> None:
    config = GraphAuthConfig.from_settings(settings, http_client=fake.login.http_client(fake.url))
    start = await begin_sign_in(config, REDIRECT, state="state-42", login_hint=mailbox.user.upn)
    parts = urlsplit(start.auth_uri)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    )
    assert query["code_challenge_method"] == ["S256"] and query["state"] == ["state-42"]
    assert "offline_access" in query["scope"][0] and "Calendars.ReadWrite" in query["scope"][0]
    creds = await complete_sign_in(config, start.flow, fake.login.approve(start.auth_uri, mailbox.user.upn))
    assert creds["kind"] == "delegated" and creds["username"] == mailbox.user.upn
    assert creds["tenant_id"] == TENANT and creds["personal"] is False
    assert ("POST", "/common/oauth2/v2.0/token:authorization_code") in fake.login.requests


async def test_wrong_pkce_verifier_or_state_is_refused(fake: GraphFake, settings: Settings, mailbox: Mailbox) -> None:
    config = GraphAuthConfig.from_settings(settings, http_client=fake.login.http_client(fake.url))
    start = await begin_sign_in(config, REDIRECT)
    answer = fake.login.approve(start.auth_uri, mailbox.user.upn)
    with pytest.raises(AuthExpired):
        await complete_sign_in(config, {**start.flow, "code_verifier": "x" * 43}, answer)
    start = await begin_sign_in(config, REDIRECT)
    answer = fake.login.approve(start.auth_uri, mailbox.user.upn)
    with pytest.raises(Refused):
        await complete_sign_in(config, start.flow, {**answer, "state": "forged"})
    with pytest.raises(Refused):
        await complete_sign_in(config, start.flow, {"error": "access_denied", "state": answer["state"]})


async def test_expired_access_token_is_refreshed_and_the_cache_saved(
    fake: GraphFake, settings: Settings, delegated: ConnectionInfo
) -> None:
    calendar = open_calendar(delegated, "me/calendar", settings)
    try:
        await calendar.changes(None, WINDOW)
        fake.login.expire_access_tokens()
        await calendar.changes(None, WINDOW)
    finally:
        await calendar.aclose()
    saved = delegated.save_credentials
    assert isinstance(saved, Saved) and saved.documents
    assert saved.documents[-1]["token_cache"] != delegated.credentials["token_cache"]  # type: ignore[index]
    assert ("POST", "/common/oauth2/v2.0/token:refresh_token") in fake.login.requests


async def test_revoked_refresh_token_raises_auth_expired(
    fake: GraphFake, settings: Settings, delegated: ConnectionInfo
) -> None:
    fake.login.revoke_refresh_tokens()
    fake.login.expire_access_tokens()
    calendar = open_calendar(delegated, "me/calendar", settings)
    try:
        with pytest.raises(AuthExpired):
            await calendar.changes(None, WINDOW)
    finally:
        await calendar.aclose()


async def test_saved_cache_signs_in_a_new_process(fake: GraphFake, settings: Settings, mailbox: Mailbox) -> None:
    creds = await sign_in(fake, settings, mailbox.user.upn)
    fake.login.expire_access_tokens()
    conn = ConnectionInfo("graph", mailbox.user.upn, {}, creds, Saved(), transports(fake))
    found = await discover(conn, settings)
    assert [c.remote_id for c in found] == ["me/calendar"]


async def test_client_credentials_need_admin_consent(fake: GraphFake, settings: Settings, mailbox: Mailbox) -> None:
    conn = ConnectionInfo(
        "graph",
        "practice",
        {"mode": "application", "tenant_id": TENANT, "users": [mailbox.user.upn]},
        None,
        None,
        transports(fake),
    )
    with pytest.raises(Refused):
        await discover(conn, settings)
    fake.login.grant_admin_consent(TENANT)
    found = await discover(conn, settings)
    assert [c.remote_id for c in found] == [f"users/{mailbox.user.upn}/calendar"]
    assert ("POST", f"/{TENANT}/oauth2/v2.0/token:client_credentials") in fake.login.requests
    with pytest.raises(Refused):
        open_calendar(conn, "me/calendar", settings)
    common = ConnectionInfo("graph", "practice", {"mode": "application", "tenant_id": "common"}, None)
    with pytest.raises(Refused):
        await open_calendar(common, f"users/{mailbox.user.upn}/calendar", settings).changes(None, WINDOW)


async def test_wrong_client_secret_is_auth_expired(fake: GraphFake, mailbox: Mailbox) -> None:
    fake.login.grant_admin_consent(TENANT)
    wrong = settings_with(graph_url=fake.url, graph_client_id=CLIENT_ID, graph_client_secret="not-it")
    conn = ConnectionInfo(
        "graph", "practice", {"mode": "application", "tenant_id": TENANT}, None, None, transports(fake)
    )
    calendar = open_calendar(conn, f"users/{mailbox.user.oid}/calendar", wrong)
    try:
        with pytest.raises(AuthExpired):
            await calendar.changes(None, WINDOW)
    finally:
        await calendar.aclose()


async def test_https_fake_trusted_through_ssl_cert_file(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    fake = GraphFake()
    url = await fake.start(ssl_context=server_ctx)
    fake.login.public_url = url  # the authority is the https fake itself: no routing
    fake.login.register_app(CLIENT_ID, CLIENT_SECRET)
    try:
        mbx = fake.add_user("https@clinic.example", tenant_id=TENANT)
        with ca.cert_pem.tempfile() as ca_file:
            monkeypatch.setenv("SSL_CERT_FILE", ca_file)
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
            settings = settings_with(
                graph_url=url, login_url=url, graph_client_id=CLIENT_ID, graph_client_secret=CLIENT_SECRET
            )
            config = GraphAuthConfig.from_settings(settings)
            start = await begin_sign_in(config, REDIRECT)
            assert start.auth_uri.startswith(f"{url}/common/oauth2/v2.0/authorize")
            creds = await complete_sign_in(config, start.flow, fake.login.approve(start.auth_uri, mbx.user.upn))
            conn = ConnectionInfo("graph", mbx.user.upn, {}, creds, Saved())
            calendar = open_calendar(conn, "me/calendar", settings)
            try:
                changes = await calendar.changes(None, Window(datetime.now(UTC), datetime.now(UTC) + timedelta(days=1)))
            finally:
                await calendar.aclose()
            assert changes.full and changes.items == []
    finally:
        await fake.stop()
