"""One app-wide Nylas destination: the renewal job makes it (its challenge answered, its secret
stored encrypted) and retires the per-connection destination made before; deliveries are routed by
grant_id to their connection, once each; other grants' deliveries and forged ones sync nothing. A grant
added with the API key by its email is looked up once, so deliveries (which carry its id) find it."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select, text

from adapters.nylas.webhooks import sign
from sync.engine.run import sync_connection
from sync.integrations import push
from sync.integrations.push import ensure_push, renew_push
from sync.runtime.syncqueue import SyncQueue
from sync.services.connections import add_connection, set_calendar
from sync.store.model import Appointment, AppWebhook, Calendar, Connection, WebhookSubscription
from tests.adapters.nylas.fakes.nylas import NylasFake, timespan
from tests.adapters.nylas.test_road import Syncs, clinic, connect, nylas, settle
from tests.e2e.conftest import at
from tests.e2e.test_oauth_connect import Clinic, fake_slack

__all__ = ["clinic", "fake_slack", "nylas"]  # fixtures, used by name


async def test_one_destination_for_the_app_routed_by_grant(clinic: Clinic, nylas: NylasFake) -> None:
    nylas.next_login = ("outreach.lead@work.example", "microsoft")
    conn, lead, _ = await connect(clinic, nylas)
    work = next(c.id for c in lead.calendars.values() if c.primary)
    await clinic.core.services.sync_queue.drain()  # the server's own sync after connect (and its push set-up)
    syncs = Syncs(clinic)
    clinic.core.services.sync_queue = SyncQueue(syncs)
    await sync_connection(clinic.core, conn.id)
    # Before issue 16 every connection had its own destination: made here as that code made it.
    async with clinic.core.store.session() as s:
        cal = (await s.scalars(select(Calendar).where(Calendar.connection_id == conn.id,
                                                      Calendar.remote_id == work))).one()
        conn_row = await s.get(Connection, conn.id)
    assert conn_row is not None
    legacy = await push._ensure_calendar(clinic.core, conn_row, cal, None,
                                         f"{clinic.base_url}/webhooks/nylas/{conn.id}")
    assert legacy.created == 1
    [old] = [h for h in nylas.webhooks.values() if h.url.endswith(f"/webhooks/nylas/{conn.id}")]

    # The renewal job: one destination for the app, the connection's own retired.
    await renew_push(clinic.core)
    [hook] = nylas.webhooks.values()
    assert hook.url == f"{clinic.base_url}/webhooks/nylas/app" and hook.id != old.id
    async with clinic.core.store.session() as s:
        stored = (await s.scalars(select(AppWebhook))).one()
        raw = (await s.execute(text("SELECT secret FROM app_webhook"))).scalar_one()
        assert (await s.scalars(select(WebhookSubscription))).all() == []
    assert stored.secret == hook.secret and hook.secret not in raw
    assert (await ensure_push(clinic.core, conn.id)).created == 0  # no new per-connection one
    await renew_push(clinic.core)
    assert list(nylas.webhooks) == [hook.id]  # not made twice

    # A change of this grant: one delivery (even when Nylas sends it twice), one sync of its connection.
    nylas.duplicate_deliveries = True
    nylas.server_add(lead, work, {"title": "Hospital rounds", "when": timespan(at(9))})
    await settle(clinic, nylas)
    nylas.duplicate_deliveries = False
    assert [d.status for d in nylas.deliveries] == [200, 200] and syncs.ran == [conn.id]

    # Another grant's change: acknowledged, nothing synced.
    other = nylas.add_grant("someone.else@work.example")
    nylas.server_add(other, next(iter(other.calendars)), {"title": "Not ours", "when": timespan(at(11))})
    await settle(clinic, nylas)
    assert nylas.deliveries[-1].status == 200 and syncs.ran == [conn.id]

    # Forged or unsigned: refused; the challenge is echoed raw.
    body = nylas.deliveries[0].body
    async with clinic.browser.post(hook.url, data=body, headers={"X-Nylas-Signature": sign(body, "guess")}) as r:
        assert r.status == 401
    async with clinic.browser.post(hook.url, data=body) as r:
        assert r.status == 401
    async with clinic.browser.get(hook.url, params={"challenge": "c-42"}) as r:
        assert r.status == 200 and await r.text() == "c-42"
    await settle(clinic, nylas)
    assert syncs.ran == [conn.id]


async def test_a_grant_added_by_its_email_is_routed_by_its_id(clinic: Clinic, nylas: NylasFake,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    # Nylas takes a grant's email in place of its id in paths (API-key use); its deliveries carry the id.
    desk = nylas.add_grant("outreach.desk@work.example", "microsoft")
    added = await add_connection(clinic.core, "nylas", "https://api.us.nylas.com", username=desk.email,
                                 actor="cli:test")
    conn = await clinic.connection()
    assert conn.id == added.connection_id and conn.config["grant_id"] == desk.id  # looked up once, kept
    assert conn.credentials is not None and conn.credentials["username"] == desk.email
    work = next(c for c in await clinic.calendars() if c.remote_id in desk.calendars and c.role == "mirror")
    await set_calendar(clinic.core, work.id, role="source", actor="cli:test")  # its events become appointments
    await clinic.core.services.sync_queue.drain()  # the server's own sync after connect
    syncs = Syncs(clinic)
    clinic.core.services.sync_queue = SyncQueue(syncs)
    await ensure_push(clinic.core, conn.id)
    [hook] = nylas.webhooks.values()
    assert hook.url == f"{clinic.base_url}/webhooks/nylas/app"

    # A connection stored before its grant was looked up (by an earlier version) names only the email:
    # the first delivery no connection matches looks it up, and routes to it.
    async with clinic.core.store.session() as s:
        row = await s.get(Connection, conn.id)
        assert row is not None
        row.config = {k: v for k, v in (row.config or {}).items() if k != "grant_id"}
    nylas.server_add(desk, work.remote_id, {"title": "Grand rounds", "when": timespan(at(10))})
    await settle(clinic, nylas)
    assert nylas.deliveries[-1].status == 200 and syncs.ran == [conn.id]
    assert (await clinic.connection()).config["grant_id"] == desk.id
    async with clinic.core.store.session() as s:
        [appt] = (await s.scalars(select(Appointment))).all()
    assert appt.title == "Grand rounds" and appt.start == at(10)

    # A grant no connection has: acknowledged, nothing synced or stored, and the log says so. A stored
    # connection naming a grant Nylas does not know is looked up by the first such delivery, not by each.
    async with clinic.core.store.session() as s:
        s.add(Connection(practice_id=conn.practice_id, provider="nylas", account="gone", status="active",
                         config={"url": "https://api.us.nylas.com"},
                         credentials={"username": "gone@work.example", "password": None}))
    caplog.set_level(logging.INFO, logger="clinicbot.app_webhooks")
    stranger = nylas.add_grant("stranger@elsewhere.example")
    for title in ("Not ours", "Not ours either"):
        nylas.server_add(stranger, next(iter(stranger.calendars)), {"title": title, "when": timespan(at(11))})
        await settle(clinic, nylas)
    assert [d.status for d in nylas.deliveries[-2:]] == [200, 200] and syncs.ran == [conn.id]
    assert [r.path for r in nylas.requests].count("/v3/grants/gone@work.example") == 1
    async with clinic.core.store.session() as s:
        assert len((await s.scalars(select(Appointment))).all()) == 1
    dropped = [r for r in caplog.records if "no connection has" in r.getMessage()]
    assert dropped and dropped[-1].levelno >= logging.INFO and getattr(dropped[-1], "account", "") == stranger.id
