"""App-wide webhook destinations: one per integration (Nylas), its deliveries routed by account.

A platform whose webhooks are application-wide (Nylas) sends every grant's events to every
destination. So clinicbot keeps one destination for the app, at `/webhooks/<integration>/app`,
with its secret encrypted in `app_webhook`, and routes each verified delivery to the connection
whose account it names (Nylas: `grant_id`); one for no connection here is acknowledged, logged
and dropped. Deliveries come at least once: each key is remembered per connection, as before.

A connection may name its account otherwise than deliveries do (a Nylas grant added with the API
key by its email, while deliveries carry the grant's id): the integration's `account_config`
looks the account up once, at connect (`account_entries`), or for connections stored before that,
at their next push check or at the first delivery no connection matched (`settle_accounts`), and
the answer is kept in the connection's config, where routing reads it.

`ensure_app_webhooks` (run by the push renewal job) makes the destination, rotates its secret
before it is due, and retires the per-connection destinations made before (issue 16): from then
on `ensure_push` opens none for that integration, and stops the ones that remain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from sync.contract import ConnectionInfo, ProviderError
from sync.contract.integration import AppChannel, AppDelivery, AppWebhooks, WebhookAnswer, WebhookRequest
from sync.integrations import registry
from sync.integrations.deliveries import first_delivery
from sync.integrations.providers import connection_info
from sync.integrations.push_channels import sync_queue
from sync.runtime.core import Core
from sync.runtime.locks import SyncBusy, connection_lock
from sync.store import audit
from sync.store.model import AppWebhook, Connection

__all__ = ["APP_PATH", "AppWebhookReport", "account_entries", "app_capability", "app_url", "ensure_app_webhooks",
           "handle_app_webhook", "settle_accounts", "uses_app_webhook"]

log = logging.getLogger("clinicbot.app_webhooks")
#: The path segment that names the app-wide destination instead of a connection id.
APP_PATH = "app"
#: Its secret is rotated this often (Nylas's old secret stops at once, so only our own copy changes).
ROTATE_EVERY = timedelta(days=30)
#: A connection whose account could not be looked up is asked again by a delivery at most this often.
LOOKUP_RETRY = timedelta(minutes=10)
#: No connection has id 0: its sync lock guards the app-wide destinations.
APP_LOCK_ID = 0
LOCK_WAIT = 30.0


@dataclass
class AppWebhookReport:
    created: int = 0
    rotated: int = 0
    failed: int = 0


def app_capability(name: str) -> AppWebhooks | None:
    try:
        return registry.get(name).app_webhooks
    except ProviderError:
        return None


def app_url(core: Core, name: str) -> str | None:
    """The destination's address, or None when the platform could not reach this server."""
    if not core.settings.public_url:
        return None
    return f"{core.settings.base_url().rstrip('/')}/webhooks/{name}/{APP_PATH}"


async def uses_app_webhook(core: Core, name: str) -> bool:
    """Whether the integration's deliveries already come through its app-wide destination."""
    if app_capability(name) is None:
        return False
    async with core.store.session() as s:
        return await s.scalar(select(AppWebhook.id).where(AppWebhook.integration == name)) is not None


async def ensure_app_webhooks(core: Core, *, only: str | None = None) -> AppWebhookReport:
    """Make or rotate each app-wide destination of an integration that has connections (or of `only`).

    Serialised (across replicas too) under the sync lock of the pseudo-connection 0: the worker's
    ensure after a sync and the renewal job would otherwise both make a destination."""
    try:
        async with connection_lock(core, APP_LOCK_ID, wait=LOCK_WAIT):
            return await _ensure_locked(core, only)
    except SyncBusy:
        log.info("app webhooks busy elsewhere; the next pass checks them")
        return AppWebhookReport()


async def _ensure_locked(core: Core, only: str | None) -> AppWebhookReport:
    report = AppWebhookReport()
    async with core.store.session() as s:
        providers = set((await s.scalars(select(Connection.provider).distinct())).all())
        rows = {r.integration: r for r in (await s.scalars(select(AppWebhook))).all()}
    if only is not None:
        providers &= {only}
    now = core.clock()
    for name in sorted(providers):
        cap = app_capability(name)
        url = app_url(core, name)
        if cap is None or url is None:
            continue
        row = rows.get(name)
        if row is not None and row.url == url and row.created_at is not None and (
                (row.rotated_at or row.created_at) + ROTATE_EVERY - cap.renew_margin > now):
            continue
        current = AppChannel(row.remote_id, row.secret or "", now) if row is not None and row.url == url else None
        try:
            opened = await cap.open(core.settings, url, current, transport=core.services.http_transport)
        except ProviderError as exc:
            report.failed += 1
            log.warning("app webhook not made", extra={"integration": name, "error": type(exc).__name__})
            continue
        await _store(core, name, url, opened, row, now)
        if row is not None and row.remote_id != opened.remote_id:
            try:  # the old address (a moved public URL): its destination goes
                await cap.stop(core.settings, row.remote_id, transport=core.services.http_transport)
            except ProviderError as exc:
                log.warning("old app webhook not deleted", extra={"integration": name, "error": type(exc).__name__})
        if current is not None and opened.remote_id == current.remote_id:
            report.rotated += 1
        else:
            report.created += 1
    return report


async def _store(core: Core, name: str, url: str, opened: AppChannel, row: AppWebhook | None,
                 now: datetime) -> None:
    async with core.store.session() as s:
        stored = await s.scalar(select(AppWebhook).where(AppWebhook.integration == name))
        if stored is None:
            s.add(AppWebhook(integration=name, remote_id=opened.remote_id, url=url, secret=opened.secret,
                             created_at=now))
            action = "webhook.app_created"
        else:
            rotated = stored.remote_id == opened.remote_id
            stored.remote_id, stored.url, stored.secret = opened.remote_id, url, opened.secret
            if rotated:
                stored.rotated_at = now
            else:
                stored.created_at, stored.rotated_at = now, None
            action = "webhook.app_rotated" if rotated else "webhook.app_created"
        await audit.record(s, actor="system:push", action=action, details={"integration": name})


async def handle_app_webhook(core: Core, name: str, request: WebhookRequest) -> WebhookAnswer:
    """Serve one delivery to the app-wide destination: verify, route by account, ask for that sync."""
    cap = app_capability(name)
    if cap is None:
        return WebhookAnswer(404, "unknown webhook")
    async with core.store.session() as s:
        row = await s.scalar(select(AppWebhook).where(AppWebhook.integration == name))
        secret = row.secret if row is not None else None
    if request.method == "POST" and not secret:
        return WebhookAnswer(401, "no destination")
    read = cap.read(request, secret or "")
    if isinstance(read, WebhookAnswer):
        return read
    ids = await _connections_of(core, name, cap, read)
    if not ids and await settle_accounts(core, name, throttled=True):
        ids = await _connections_of(core, name, cap, read)  # a connection stored before it knew its account
    if not ids:
        # INFO: an app's other grants (used elsewhere) are routine, and their deliveries may be many.
        log.info("app webhook delivery for an account no connection has; acknowledged and dropped",
                    extra={"integration": name, "account": read.account, "reason": read.reason})
        return WebhookAnswer(200, "no connection for that account")
    fresh = [cid for cid in ids if await first_delivery(core, name, cid, read.key)]
    for connection_id in fresh:
        sync_queue(core).request(connection_id, reason=f"{name}:{read.reason}")
    return WebhookAnswer(200, "ok" if fresh else "duplicate")


async def _connections_of(core: Core, name: str, cap: AppWebhooks, delivery: AppDelivery) -> list[int]:
    async with core.store.session() as s:
        rows = (await s.execute(select(Connection.id, Connection.config).where(
            Connection.provider == name, Connection.sync_enabled.is_(True),
            Connection.status != "removing"))).tuples().all()
    return [cid for cid, config in rows if cap.account_of(config or {}) == delivery.account]


async def account_entries(core: Core, name: str, info: ConnectionInfo) -> dict[str, Any]:
    """What a new connection's config needs for its deliveries to find it ({} for other integrations).
    A ProviderError says the platform could not tell (the connection is then refused)."""
    cap = app_capability(name)
    if cap is None:
        return {}
    return await cap.account_config(info, core.settings)


async def settle_accounts(core: Core, name: str, *, connection_ids: list[int] | None = None,
                          throttled: bool = False) -> int:
    """Look up, once, the account of each connection of `name` whose config does not say it (or of
    those of `connection_ids`), and keep it in the config; how many were settled. A connection the
    platform cannot answer for is logged and left for the next time (the others go on); with
    `throttled` (a delivery no connection matched: other grants' deliveries may be many) one tried in
    vain within LOOKUP_RETRY is not asked again."""
    cap = app_capability(name)
    if cap is None:
        return 0
    query = select(Connection).where(Connection.provider == name, Connection.status == "active")
    if connection_ids is not None:
        query = query.where(Connection.id.in_(connection_ids))
    async with core.store.session() as s:
        todo = [c for c in (await s.scalars(query)).all() if not cap.account_of(c.config or {})]
        infos = [(c.id, connection_info(c, core)) for c in todo]
    settled = 0
    failed, now = core.services.account_lookups, core.clock()
    for connection_id, info in infos:
        last = failed.get(connection_id)
        if throttled and last is not None and now - last < LOOKUP_RETRY:
            continue
        try:
            found = await cap.account_config(info, core.settings)
        except ProviderError as exc:
            failed[connection_id] = now
            log.warning("the account of a connection could not be looked up; its deliveries are not routed yet",
                        extra={"integration": name, "connection": connection_id, "error": type(exc).__name__})
            continue
        failed.pop(connection_id, None)
        if not found:
            continue
        async with core.store.session() as s:
            row = await s.get(Connection, connection_id)
            if row is None:
                continue
            row.config = {**(row.config or {}), **found}
        settled += 1
        log.info("connection's account looked up for routing its deliveries",
                 extra={"integration": name, "connection": connection_id})
    return settled
