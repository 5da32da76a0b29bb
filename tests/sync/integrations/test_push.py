"""Push channels end to end: the real server on a loopback port, the fake Graph (which runs the
validationToken handshake against our /webhooks/graph/<id>) and the fake Google (which POSTs watch
notifications to /webhooks/google/<id>). ensure_push, renew_push, lifecycle events, stop_push,
`sync off`, and refreshed credentials written back encrypted."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, text

from adapters.graph import GraphTransports
from bot.app import build_app
from sync.boot import open_core
from sync.integrations.push import ensure_push, notification_url, renew_push, stop_push
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.runtime.syncqueue import SyncQueue
from sync.store.migrate import upgrade
from sync.store.model import Calendar, Connection, Practice, WebhookSubscription
from tests.adapters.google.fakes.google import GoogleFake
from tests.adapters.graph.conftest import CLIENT_ID, CLIENT_SECRET, TENANT, sign_in
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.conftest import drop_schema, make_settings

UPN = "dr.lee@clinic.example"
PRIMARY = "primary-owner@example.org"


@dataclass
class Clinic:
    core: Core
    graph: GraphFake
    google: GoogleFake
    mailbox: Mailbox
    synced: list[int] = field(default_factory=list)

    @property
    def queue(self) -> SyncQueue:
        return self.core.services.sync_queue  # type: ignore[no-any-return]

    async def rows(self, connection_id: int | None = None) -> list[WebhookSubscription]:
        async with self.core.store.session() as s:
            query = select(WebhookSubscription).order_by(WebhookSubscription.id)
            if connection_id is not None:
                query = query.where(WebhookSubscription.connection_id == connection_id)
            return list((await s.scalars(query)).all())

    async def add(
        self, provider: str, credentials: dict[str, Any], calendars: list[tuple[str, str]], practice_id: int = 0
    ) -> int:
        async with self.core.store.session() as s:
            practice = await s.get(Practice, practice_id) or await s.scalar(select(Practice).limit(1))
            if practice is None:
                practice = Practice(name="Clinic")
                s.add(practice)
                await s.flush()
            conn = Connection(practice_id=practice.id, provider=provider, account="acct", credentials=credentials)
            s.add(conn)
            await s.flush()
            for remote_id, role in calendars:
                s.add(Calendar(connection_id=conn.id, remote_id=remote_id, name=remote_id, role=role))
            return conn.id


@pytest.fixture
async def clinic(backend: str, tmp_path: Path) -> AsyncIterator[Clinic]:
    graph = GraphFake()
    await graph.start()
    graph.login.register_app(CLIENT_ID, CLIENT_SECRET)
    mailbox = graph.add_user(UPN, tenant_id=TENANT)
    google = await GoogleFake().start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = make_settings(
        backend, tmp_path,
        public_url=f"http://127.0.0.1:{port}", graph_url=graph.url, graph_client_id=CLIENT_ID,
        graph_client_secret=CLIENT_SECRET, google_api_url=google.url, google_oauth_url=google.url,
        google_client_id=google.oauth.client_id, google_client_secret=google.oauth.client_secret,
        sync_poll_seconds=0, scheduler_enabled=False,
    )
    core = open_core(settings)
    await upgrade(core.store)
    state = Clinic(core, graph, google, mailbox)

    async def runner(connection_id: int) -> None:
        state.synced.append(connection_id)

    core.services.sync_queue = SyncQueue(runner)
    runner_ = web.AppRunner(build_app(settings, core=core), access_log=None)
    await runner_.setup()
    await web.SockSite(runner_, sock).start()
    try:
        yield state
    finally:
        await graph.subs.drain()
        await google.drain()
        await runner_.cleanup()
        await graph.stop()
        await google.close()
        await core.close()
        await drop_schema(settings)


async def _graph_connection(
    clinic: Clinic, calendars: list[tuple[str, str]] | None = None, practice_id: int = 0
) -> int:
    clinic.core.services.http_transport = GraphTransports(login=clinic.graph.login.http_client(clinic.graph.url))
    creds = await sign_in(clinic.graph, clinic.core.settings, UPN)
    return await clinic.add("graph", creds, calendars or [("me/calendar", "source")], practice_id)


async def test_graph_subscription_created_once_and_notifications_request_a_sync(clinic: Clinic) -> None:
    second = clinic.graph.store.add_calendar(clinic.mailbox, "Clinic")
    cals = [("me/calendar", "source"), (f"me/calendars/{second.id}", "mirror"), ("me/calendars/other", "busy")]
    conn_id = await _graph_connection(clinic, cals)
    report = await ensure_push(clinic.core, conn_id)
    syncing = 2
    assert report.created == syncing and report.failed == 0
    assert len(clinic.graph.subs.subscriptions) == syncing  # the busy calendar gets none
    rows = await clinic.rows(conn_id)
    assert {r.remote_id for r in rows} == set(clinic.graph.subs.subscriptions)
    sub = clinic.graph.subs.subscriptions[rows[0].remote_id]
    assert sub.notification_url == f"{clinic.core.settings.public_url}/webhooks/graph/{conn_id}"
    assert sub.client_state == rows[0].secret and len(rows[0].secret or "") >= 32
    # Idempotent: nothing new at the provider, no provider call at all.
    calls = len(clinic.graph.http_requests)
    again = await ensure_push(clinic.core, conn_id)
    assert (again.created, again.renewed) == (0, 0) and len(clinic.graph.subs.subscriptions) == syncing
    assert len(clinic.graph.http_requests) == calls
    # A change in Outlook reaches our route and requests a sync of that connection.
    clinic.graph.put_event(clinic.mailbox, {
        "subject": "Walk-in", "start": {"dateTime": "2031-01-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2031-01-01T10:30:00", "timeZone": "UTC"}})
    await clinic.graph.subs.drain()
    await clinic.queue.drain()
    assert [d[2] for d in clinic.graph.subs.deliveries if d[1] == "created"] == [202]
    assert clinic.synced == [conn_id]


async def test_graph_renewal_and_lifecycle_events(clinic: Clinic) -> None:
    conn_id = await _graph_connection(clinic)
    await ensure_push(clinic.core, conn_id)
    [row] = await clinic.rows(conn_id)
    # Close to expiry: the renewal job PATCHes it further out, same id and secret.
    async with clinic.core.store.session() as s:
        (await s.get(WebhookSubscription, row.id)).expires_at = clinic.core.clock() + timedelta(hours=1)  # type: ignore[union-attr]
    await renew_push(clinic.core)
    [renewed] = await clinic.rows(conn_id)
    assert renewed.remote_id == row.remote_id and renewed.expires_at > clinic.core.clock() + timedelta(days=6)
    assert ("PATCH", f"/subscriptions/{row.remote_id}") in clinic.graph.http_requests
    assert clinic.graph.subs.subscriptions[row.remote_id].expires > clinic.core.clock() + timedelta(days=6)

    # reauthorizationRequired: recorded, a sync requested, and the next pass renews at once.
    assert await clinic.graph.subs.lifecycle(row.remote_id, "reauthorizationRequired") == 202
    assert clinic.graph.subs.subscriptions[row.remote_id].needs_reauthorization
    assert (await ensure_push(clinic.core, conn_id)).renewed == 1
    assert not clinic.graph.subs.subscriptions[row.remote_id].needs_reauthorization
    await clinic.queue.drain()  # (requests close together coalesce into one sync)
    assert clinic.synced.count(conn_id) == 1

    # missed: only a (delta) sync is requested.
    assert await clinic.graph.subs.lifecycle(row.remote_id, "missed") == 202
    await clinic.queue.drain()
    assert clinic.synced.count(conn_id) >= 2

    # subscriptionRemoved: the renewal job subscribes again with a new id and secret.
    assert await clinic.graph.subs.lifecycle(row.remote_id, "subscriptionRemoved") == 202
    await renew_push(clinic.core)
    [fresh] = await clinic.rows(conn_id)
    assert fresh.remote_id != row.remote_id and fresh.status == "active" and fresh.secret != row.secret
    assert list(clinic.graph.subs.subscriptions) == [fresh.remote_id]

    # A subscription Graph forgot (expired) is re-created by the renewal, not left dead.
    del clinic.graph.subs.subscriptions[fresh.remote_id]
    async with clinic.core.store.session() as s:
        (await s.get(WebhookSubscription, fresh.id)).expires_at = clinic.core.clock()  # type: ignore[union-attr]
    await renew_push(clinic.core)
    [third] = await clinic.rows(conn_id)
    assert third.remote_id in clinic.graph.subs.subscriptions and third.remote_id != fresh.remote_id


async def test_graph_stop_push_deletes_the_subscription(clinic: Clinic) -> None:
    conn_id = await _graph_connection(clinic)
    await ensure_push(clinic.core, conn_id)
    [row] = await clinic.rows(conn_id)
    report = await stop_push(clinic.core, conn_id)
    assert report.stopped == 1 and report.failed == 0
    assert clinic.graph.subs.subscriptions == {} and await clinic.rows(conn_id) == []
    assert ("DELETE", f"/subscriptions/{row.remote_id}") in clinic.graph.http_requests


async def test_refreshed_graph_tokens_are_saved_encrypted(clinic: Clinic) -> None:
    conn_id = await _graph_connection(clinic)
    async with clinic.core.store.session() as s:
        before = (await s.get(Connection, conn_id)).credentials["token_cache"]  # type: ignore[union-attr]
    clinic.graph.login.expire_access_tokens()
    assert (await ensure_push(clinic.core, conn_id)).created == 1
    async with clinic.core.store.session() as s:
        after = (await s.get(Connection, conn_id)).credentials  # type: ignore[union-attr]
        raw = await s.scalar(text("SELECT credentials FROM connection WHERE id = :id"), {"id": conn_id})
    assert after["token_cache"] != before and after["kind"] == "delegated"
    assert "refresh_token" not in str(raw) and "access_token" not in str(raw).lower()


async def test_google_channel_opened_notifies_renewed_and_stopped(clinic: Clinic) -> None:
    grant = clinic.google.oauth.grant()
    conn_id = await clinic.add("google", grant, [(PRIMARY, "source")])
    assert (await ensure_push(clinic.core, conn_id)).created == 1
    [row] = await clinic.rows(conn_id)
    channel = clinic.google.channels[row.remote_id]
    assert channel.address == f"{clinic.core.settings.public_url}/webhooks/google/{conn_id}"
    assert channel.token == row.secret and channel.resource_id == row.resource_id
    assert (await ensure_push(clinic.core, conn_id)).created == 0 and len(clinic.google.channels) == 1
    # Refreshed tokens (the grant had no expiry, so the first call refreshed) are stored encrypted.
    async with clinic.core.store.session() as s:
        creds = (await s.get(Connection, conn_id)).credentials  # type: ignore[union-attr]
        raw = await s.scalar(text("SELECT credentials FROM connection WHERE id = :id"), {"id": conn_id})
    assert creds["access_token"] != grant["access_token"] and creds["refresh_token"] == grant["refresh_token"]
    assert grant["refresh_token"] not in str(raw) and creds["access_token"] not in str(raw)

    clinic.google.server_insert(PRIMARY, {
        "summary": "Walk-in", "start": {"dateTime": "2031-01-01T10:00:00Z"}, "end": {"dateTime": "2031-01-01T10:30:00Z"}})
    await clinic.google.drain()
    await clinic.queue.drain()
    # (The channel's first "sync" message may arrive before its row is stored; it only confirms the channel.)
    assert [(d.state, d.status) for d in clinic.google.deliveries if d.state != "sync"] == [("exists", 200)]
    assert clinic.synced == [conn_id]

    # Renewal: a new channel first, then the old one stopped; only the new one announces changes.
    async with clinic.core.store.session() as s:
        (await s.get(WebhookSubscription, row.id)).expires_at = clinic.core.clock() + timedelta(hours=2)  # type: ignore[union-attr]
    await renew_push(clinic.core)
    [fresh] = await clinic.rows(conn_id)
    assert fresh.remote_id != row.remote_id and clinic.google.channels[row.remote_id].stopped
    assert not clinic.google.channels[fresh.remote_id].stopped
    clinic.google.server_insert(PRIMARY, {
        "summary": "Walk-in 2", "start": {"dateTime": "2031-01-02T10:00:00Z"},
        "end": {"dateTime": "2031-01-02T10:30:00Z"}})
    await clinic.google.drain()
    await clinic.queue.drain()
    assert [d.channel_id for d in clinic.google.deliveries if d.state == "exists"][-1] == fresh.remote_id
    assert all(d.status == 200 for d in clinic.google.deliveries if d.state == "exists")

    # Disconnect: channels.stop at Google, no row left.
    assert (await stop_push(clinic.core, conn_id)).stopped == 1
    assert clinic.google.channels[fresh.remote_id].stopped and await clinic.rows(conn_id) == []


async def test_no_public_https_address_opens_nothing(clinic: Clinic, tmp_path: Path) -> None:
    conn_id = await clinic.add("google", clinic.google.oauth.grant(), [(PRIMARY, "source")])
    base = clinic.core.settings
    for public in (None, "http://clinic.example.org"):
        clinic.core.settings = base.model_copy(update={"public_url": public})
        report = await ensure_push(clinic.core, conn_id)
        assert report.skipped == "no public https address" and report.created == 0
    assert clinic.google.channels == {} and await clinic.rows() == []
    real = Settings(_env_file=None, public_url="http://127.0.0.1:3978")  # type: ignore[call-arg]
    assert notification_url(real, "graph", 5) is None  # a real provider is never sent a loopback http address
    public = Settings(_env_file=None, public_url="https://bot.clinic.example/")  # type: ignore[call-arg]
    assert notification_url(public, "google", 5) == "https://bot.clinic.example/webhooks/google/5"


async def test_sync_worker_opens_channels_after_a_sync(clinic: Clinic) -> None:
    from sync.jobs.worker import SyncWorker

    conn_id = await clinic.add("google", clinic.google.oauth.grant(), [(PRIMARY, "source")])
    worker = SyncWorker(clinic.core, poll_seconds=0)
    await worker._sync_connection(conn_id)  # the runner behind every queued sync
    [row] = await clinic.rows(conn_id)
    assert row.remote_id in clinic.google.channels and row.status == "active"


async def test_sync_off_and_connection_remove_stop_channels(clinic: Clinic) -> None:
    from bot.commands import handle, parse, resolve_actor
    from bot.views import Notice
    from sync.services.connections import set_calendar
    from sync.services.removals import remove_connection

    admin = await resolve_actor(clinic.core, "slack", "T1", "U1", "ann")
    second = clinic.graph.store.add_calendar(clinic.mailbox, "Clinic")
    conn_id = await _graph_connection(
        clinic, [("me/calendar", "source"), (f"me/calendars/{second.id}", "mirror")], admin.practice_id
    )
    assert (await ensure_push(clinic.core, conn_id)).created == 2
    # One calendar turned to busy: its subscription goes, the other stays.
    cal_id = next(r.calendar_id for r in await clinic.rows(conn_id))
    assert cal_id is not None
    await set_calendar(clinic.core, cal_id, role="busy", actor="test")
    assert len(clinic.graph.subs.subscriptions) == 1 and len(await clinic.rows(conn_id)) == 1
    # `sync off` in chat: Graph DELETE for the rest.
    view = await handle(clinic.core, admin, parse("sync off"))
    assert isinstance(view, Notice) and clinic.graph.subs.subscriptions == {} and await clinic.rows() == []
    assert (await ensure_push(clinic.core, conn_id)).created == 0  # a disabled connection gets none back
    # Back on, then removed: subscription deleted at Graph, the connection forgotten.
    await handle(clinic.core, admin, parse("sync on"))
    assert (await ensure_push(clinic.core, conn_id)).created == 1
    gone = await remove_connection(clinic.core, conn_id, actor="test")
    assert gone.stopped == 1 and gone.done and clinic.graph.subs.subscriptions == {}
    async with clinic.core.store.session() as s:
        assert await s.get(Connection, conn_id) is None


def test_the_renewal_job_is_registered_with_the_scheduler(tmp_path: Path) -> None:
    from sync.integrations.push import RENEW_EVERY_SECONDS
    from sync.jobs.scheduler import PERIODIC_PREFIX

    settings = make_settings("sqlite", tmp_path)
    core = open_core(settings)
    app = build_app(settings, core=core)
    from bot.app import CORE

    scheduler = app[CORE].services.scheduler
    assert scheduler._periodic["push.renew"][0] == RENEW_EVERY_SECONDS
    assert scheduler.add_periodic("push.renew", RENEW_EVERY_SECONDS, renew_push) == PERIODIC_PREFIX + "push.renew"
