"""The Nylas road through the running server: a practitioner types `connect nylas` in Slack, signs
in through Nylas's hosted OAuth (PKCE), and the callback stores the grant's calendars. The webhook
destination is made (its challenge answered, its secret stored encrypted); signed deliveries
request a sync of the right connection once, while forged, missing, replayed and other grants'
deliveries request nothing; the secret rotates on both documented paths; grant.expired turns into
the reconnect advice, and signing in again revives the same connection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, text, update

from adapters.nylas.webhooks import sign
from sync.engine.run import sync_connection
from sync.integrations.push import ensure_push
from sync.runtime.syncqueue import SyncQueue
from sync.store.model import AppWebhook, Connection, WebhookDelivery, WebhookSubscription
from tests.adapters.nylas.fakes.nylas import Grant, NylasFake, timespan
from tests.e2e.conftest import at
from tests.e2e.test_oauth_connect import Clinic, fake_slack, practitioner_connects, run_clinic, sign_in_link
from tests.fakes.slack import FakeSlack

__all__ = ["fake_slack"]  # the Slack fixture, used by name


@pytest.fixture
async def nylas() -> AsyncIterator[NylasFake]:
    fake = await NylasFake().start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def clinic(backend: str, tmp_path: Path, fake_slack: FakeSlack, nylas: NylasFake) -> AsyncIterator[Clinic]:
    async for running in run_clinic(backend, tmp_path, fake_slack, nylas_api_url=nylas.url,
                                    nylas_client_id=nylas.client_id, nylas_api_key=nylas.api_key):
        yield running


class Syncs:
    """The sync queue's runner: records each sync it runs, and runs it."""

    def __init__(self, clinic: Clinic) -> None:
        self.clinic = clinic
        self.ran: list[int] = []

    async def __call__(self, connection_id: int) -> None:
        self.ran.append(connection_id)
        await sync_connection(self.clinic.core, connection_id)


async def settle(clinic: Clinic, nylas: NylasFake) -> None:
    for _ in range(2):
        await nylas.drain()
        await clinic.core.services.sync_queue.drain()


async def connect(clinic: Clinic, nylas: NylasFake) -> tuple[Connection, Grant, str]:
    """`connect nylas` from chat and the hosted sign-in; the connection, its grant and the callback page."""
    answer = await practitioner_connects(clinic, "nylas")
    link = sign_in_link(answer, f"{nylas.url}/v3/connect/auth?")
    query = parse_qs(urlsplit(link).query)
    assert query["code_challenge_method"] == ["s256"] and query["redirect_uri"] == [
        f"{clinic.base_url}/oauth/nylas/callback"]
    async with clinic.browser.get(link) as page:  # Nylas sends the browser back to the callback
        body = await page.text()
    assert page.status == 200, body
    assert "Nylas connected" in body and "Work: mirror" in body
    # The server syncs a new connection at once, in the background: let that end, so a test's own
    # sync does not find the connection busy (SyncBusy).
    if clinic.core.services.sync_queue is not None:
        await clinic.core.services.sync_queue.drain()
    conn = await clinic.connection()
    grant = next(g for g in nylas.grants.values() if g.email == nylas.next_login[0])
    return conn, grant, body


async def test_connect_from_chat_then_webhooks_rotation_and_expiry(clinic: Clinic, nylas: NylasFake) -> None:
    nylas.next_login = ("outreach.lead@work.example", "microsoft")
    lead = nylas.add_grant("outreach.lead@work.example", "microsoft")
    nylas.add_calendar(lead, "holidays", "Holidays", read_only=True)
    conn, grant, page = await connect(clinic, nylas)
    assert grant is lead and "Holidays: busy (read only)" in page
    assert conn.provider == "nylas" and conn.account == lead.email and conn.config["grant_id"] == lead.id
    assert conn.practitioner_id is not None
    async with clinic.core.store.session() as s:
        raw = (await s.execute(text("SELECT credentials FROM connection"))).scalar_one()
    assert lead.id not in raw  # stored encrypted
    calendars = {c.remote_id: c for c in await clinic.calendars()}
    work = next(c.id for c in lead.calendars.values() if c.primary)
    assert calendars[work].role == "mirror" and calendars["holidays"].read_only

    await clinic.core.services.sync_queue.drain()  # the server's own sync after connect (and its push set-up)
    syncs = Syncs(clinic)
    clinic.core.services.sync_queue = SyncQueue(syncs)
    await sync_connection(clinic.core, conn.id)
    await ensure_push(clinic.core, conn.id)  # made here or by the server's sync just before: one either way
    [hook] = nylas.webhooks.values()
    # One destination for the app (Nylas webhooks are app-wide), made only after its challenge was echoed.
    assert hook.url == f"{clinic.base_url}/webhooks/nylas/app"
    async with clinic.core.store.session() as s:
        stored = (await s.scalars(select(AppWebhook))).one()
        raw_secret = (await s.execute(text("SELECT secret FROM app_webhook"))).scalar_one()
        assert (await s.scalars(select(WebhookSubscription))).all() == []
    assert stored.secret == hook.secret and hook.secret not in raw_secret

    # A change in the work calendar: one signed delivery, one sync; a duplicate delivery syncs nothing more.
    nylas.duplicate_deliveries = True
    made = nylas.server_add(lead, work, {"title": "Hospital rounds", "when": timespan(at(9))})
    await settle(clinic, nylas)
    assert [d.status for d in nylas.deliveries] == [200, 200] and syncs.ran == [conn.id]
    nylas.duplicate_deliveries = False

    # Another connection's grant: acknowledged, ignored.
    other = nylas.add_grant("someone.else@work.example")
    nylas.server_add(other, next(iter(other.calendars)), {"title": "Not ours", "when": timespan(at(11))})
    await settle(clinic, nylas)
    assert nylas.deliveries[-1].status == 200 and syncs.ran == [conn.id]

    # Forged, missing and replayed signatures change nothing; the challenge is echoed raw.
    url = hook.url
    first = nylas.deliveries[0].body
    forged = first.replace(b"event.created", b"event.deleted")
    async with clinic.browser.post(url, data=forged, headers={"X-Nylas-Signature": sign(first, hook.secret)}) as r:
        assert r.status == 401
    async with clinic.browser.post(url, data=first) as r:
        assert r.status == 401
    async with clinic.browser.post(url, data=first, headers={"X-Nylas-Signature": sign(first, hook.secret)}) as r:
        assert r.status == 200 and await r.text() == "duplicate"
    async with clinic.browser.get(url, params={"challenge": "abc-123_x"}) as r:
        assert r.status == 200 and await r.text() == "abc-123_x"
    await settle(clinic, nylas)
    assert syncs.ran == [conn.id]
    async with clinic.core.store.session() as s:
        keys = (await s.scalars(select(WebhookDelivery.key))).all()
    assert len(keys) == 1

    # Rotation, on the API reference's path and then on the SDK's: the old secret stops at once.
    for paths in ({"post", "put"}, {"put"}):
        nylas.rotate_paths = paths
        old = hook.secret
        async with clinic.core.store.session() as s:  # its secret is due for rotation
            await s.execute(update(AppWebhook).values(created_at=clinic.core.clock() - timedelta(days=40),
                                                      rotated_at=None))
        report = await ensure_push(clinic.core, conn.id)
        assert report.renewed == 1 and list(nylas.webhooks) == [hook.id] and hook.secret != old
        async with clinic.core.store.session() as s:
            assert (await s.scalars(select(AppWebhook))).one().secret == hook.secret
        nylas.server_edit(lead, work, made["id"], {"title": "Hospital rounds (moved)"})
        await settle(clinic, nylas)
        assert nylas.deliveries[-1].status == 200
        async with clinic.browser.post(url, data=b"{}", headers={"X-Nylas-Signature": sign(b"{}", old)}) as r:
            assert r.status == 401
    assert syncs.ran == [conn.id] * 3

    # The grant expires: its webhook asks for a sync, the sync meets 401, and chat says to reconnect.
    nylas.expire_grant(lead)
    await settle(clinic, nylas)
    assert syncs.ran == [conn.id] * 4
    async with clinic.core.store.session() as s:
        expired = await s.get(Connection, conn.id)
        assert expired is not None and expired.status == "auth_expired"
    # The person who connected it gets the reconnect card, once.
    fake_slack = clinic.slack.fake
    await fake_slack.wait_for(lambda: any("has expired" in json.dumps(c.args)
                                          for c in fake_slack.calls_to("chat.postMessage")))
    cards = [c for c in fake_slack.calls_to("chat.postMessage") if "has expired" in json.dumps(c.args)]
    assert len(cards) == 1 and "connect nylas" in json.dumps(cards[0].args)
    status = await clinic.say("status", "US", "status")
    assert "reconnect" in status.lower(), status
    assert json.loads(status)

    # Signing in again (Nylas keeps the grant id) revives that connection, roles and all: no second one.
    again = await clinic.say("connect nylas", "UP", "reconnect")
    async with clinic.browser.get(sign_in_link(again, f"{nylas.url}/v3/connect/auth?")) as page:
        assert page.status == 200 and "Nylas connected" in await page.text()
    revived = await clinic.connection()  # still exactly one
    assert revived.id == conn.id and revived.status == "active" and revived.last_error is None
    assert {c.remote_id: c.role for c in await clinic.calendars()} == {work: "mirror", "holidays": "busy"}
    assert (await sync_connection(clinic.core, conn.id)).failed == 0
