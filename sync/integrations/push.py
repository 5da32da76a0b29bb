"""Push channels of every integration that has them: open, renew and stop them, one row each.

- `ensure_push(core, connection_id)` gives every enabled source or mirror calendar of a connection
  whose integration declares push channels one active channel (a Graph subscription, a Google
  events.watch channel...), with a random secret stored encrypted in its WebhookSubscription row,
  and likewise every work calendar with tracked events (its tracked activities follow edits at once; it
  is closed when the last one is untracked: sync.services.tracked_events calls it). It runs after
  each successful sync; when every channel is active and far from expiry it costs a few small
  SELECTs and no platform call.
- `renew_push(core)` is the leader's periodic job: channels due within their integration's margin
  are renewed (in place, or a new one first and the old one stopped, as the integration does it); a
  removed or vanished one is made again (a lifecycle event sets the row's expiry to now, so it is
  renewed on the next run or right after the sync that event requested).
- `stop_push(core, connection_id)` on disconnect and `sync off`. A disconnect keeps what the platform
  failed to delete (other than "already gone") as a "stopping" row, which `retry_stops` tries again.
Channels need a public https address (CLINICBOT_PUBLIC_URL). Without one nothing is opened and the
connection is polled instead; plain http is accepted only when both this server and the platform's
API are on loopback (the test fakes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, or_, select

from sync.contract import CalendarProvider, ProviderError, Refused
from sync.contract.integration import Channel, PushChannels
from sync.integrations import registry
from sync.integrations.app_webhooks import app_capability, ensure_app_webhooks, settle_accounts, uses_app_webhook
from sync.integrations.providers import open_provider
from sync.integrations.push_channels import refresh_channels
from sync.runtime.core import Core
from sync.runtime.locks import SyncBusy, connection_lock
from sync.runtime.settings import Settings
from sync.store.model import Calendar, Connection, Link, WebhookSubscription

__all__ = [
    "RENEW_EVERY_SECONDS",
    "PushReport",
    "ensure_push",
    "notification_url",
    "push_capability",
    "renew_push",
    "stop_push",
    "stop_push_for",
]

log = logging.getLogger("clinicbot.push")

#: How often the leader looks for channels to renew; far below every integration's renewal margin.
RENEW_EVERY_SECONDS = 600
#: The margin of a row whose integration is gone from this build (it is retired at its next pass).
DEFAULT_MARGIN = timedelta(hours=12)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: A renewal waits this long for a connection that is syncing, then leaves it to the next run.
LOCK_WAIT = 10.0


@dataclass
class PushReport:
    """What one ensure/renew/stop pass did; `skipped` says why nothing could be done."""

    created: int = 0
    renewed: int = 0
    stopped: int = 0
    failed: int = 0
    skipped: str | None = None
    #: What the platform answered to what failed (error class and the adapter's message; no PHI).
    errors: list[str] = field(default_factory=list)

    def add(self, other: PushReport) -> None:
        self.created += other.created
        self.renewed += other.renewed
        self.stopped += other.stopped
        self.failed += other.failed
        self.errors += other.errors


def push_capability(name: str) -> PushChannels | None:
    """The integration's push-channel capability, or None when it has none (or is not in this build)."""
    try:
        return registry.get(name).push_channels
    except Refused:
        return None


def _margin(name: str) -> timedelta:
    push = push_capability(name)
    return push.renew_margin if push is not None else DEFAULT_MARGIN


def _margins() -> list[timedelta]:
    return [p.renew_margin for i in registry.integrations() if (p := i.push_channels) is not None]


def notification_url(settings: Settings, provider: str, connection_id: int) -> str | None:
    """The webhook address for a connection, or None when the platform could not reach us."""
    push = push_capability(provider)
    if not settings.public_url or push is None:
        return None
    public = urlsplit(settings.public_url)
    if public.scheme != "https":
        api = push.api_url(settings)
        if not (public.scheme == "http" and public.hostname in _LOOPBACK and urlsplit(api).hostname in _LOOPBACK):
            return None
    return f"{settings.base_url().rstrip('/')}/webhooks/{provider}/{connection_id}"


def _due(row: WebhookSubscription, now: datetime) -> bool:
    return row.expires_at - _margin(row.provider) <= now


async def ensure_push(core: Core, connection_id: int) -> PushReport:
    """Open, renew or retire the connection's channels so each syncing calendar has one active channel."""
    report = PushReport()
    async with core.store.session() as s:
        conn = await s.get(Connection, connection_id)
        if conn is None or push_capability(conn.provider) is None:
            report.skipped = "not a push provider"
            return report
        if conn.status == "removing":  # its channels are being deleted (retry_stops), not renewed
            report.skipped = "connection is being removed"
            return report
        cals = list(
            (await s.scalars(select(Calendar).where(Calendar.connection_id == connection_id))).all()
        )
        rows = list(
            (await s.scalars(select(WebhookSubscription).where(WebhookSubscription.connection_id == connection_id)))
            .all()
        )
        work = [c.id for c in cals if c.role == "work"]
        tracking = set((await s.scalars(
            select(Link.calendar_id).where(Link.calendar_id.in_(work)).distinct())).all()) if work else set()
    wanted = {c.id: c for c in cals if conn.sync_enabled and c.sync_enabled
              and (c.role in ("source", "mirror") or c.id in tracking)}
    cap = app_capability(conn.provider)
    if cap is not None:
        if not cap.account_of(conn.config or {}):  # stored before its account was looked up at connect
            await settle_accounts(core, conn.provider, connection_ids=[conn.id])
        app = await ensure_app_webhooks(core, only=conn.provider)
        report.created, report.renewed, report.failed = app.created, app.rotated, app.failed
        if await uses_app_webhook(core, conn.provider):
            wanted = {}  # the app-wide destination brings its deliveries: per-connection ones are retired
    now = core.clock()
    active = {r.calendar_id: r for r in rows if r.status == "active" and r.calendar_id in wanted}
    todo = [c for c in wanted.values() if c.id not in active or _due(active[c.id], now)]
    # Rows of calendars that no longer sync, duplicates, and dead rows whose calendar needs a new one.
    retire = [r for r in rows if r.calendar_id not in wanted]
    retire += [r for r in rows if r.status == "active" and r.calendar_id in active and active[r.calendar_id] is not r]
    if not todo and not retire:
        return report
    url = notification_url(core.settings, conn.provider, connection_id)
    if url is None and todo:
        log.info("push skipped: CLINICBOT_PUBLIC_URL is not a public https address",
                 extra={"connection": connection_id, "provider": conn.provider})
        report.skipped = "no public https address"
        todo = []
    try:
        async with connection_lock(core, connection_id, wait=LOCK_WAIT):
            for row in retire:
                report.add(await _stop_row(core, conn, _calendar(cals, row), row))
            for cal in todo:
                assert url is not None
                report.add(await _ensure_calendar(core, conn, cal, active.get(cal.id), url))
    except SyncBusy:
        report.skipped = "connection busy"
    return report


def _calendar(cals: list[Calendar], row: WebhookSubscription) -> Calendar | None:
    return next((c for c in cals if c.id == row.calendar_id), None)


async def _ensure_calendar(
    core: Core, conn: Connection, cal: Calendar, row: WebhookSubscription | None, url: str
) -> PushReport:
    report = PushReport()
    push = push_capability(conn.provider)
    if push is None:
        report.skipped = "provider has no push"
        return report
    provider = open_provider(core, conn, cal)
    try:
        opened = await push.open(provider, url, _channel(row, cal) if row is not None else None)
        if opened.in_place and row is not None:
            await _save_expiry(core, row.id, opened.channel.expires_at)
        else:
            new = opened.channel
            await _replace(core, conn, cal, new.remote_id, new.resource_id, new.secret, new.expires_at)
        if opened.retire is not None:
            # The old channel announced changes until the new row was committed; now stop it.
            try:
                await push.stop(provider, opened.retire)
            except ProviderError as exc:
                log.warning("old push channel not stopped; it expires by itself",
                            extra={"connection": conn.id, "error": type(exc).__name__})
        report = PushReport(renewed=1) if opened.renewed else PushReport(created=1)
    except ProviderError as exc:
        report.failed += 1
        log.warning("push channel could not be opened or renewed",
                    extra={"connection": conn.id, "calendar": cal.id, "error": type(exc).__name__})
        if row is not None and row.expires_at <= core.clock():
            await _set_status(core, row.id, "failed")
    finally:
        await _close(provider)
    return report


def _channel(row: WebhookSubscription, cal: Calendar | None) -> Channel:
    return Channel(row.remote_id, row.resource_id or "", row.secret or "", row.expires_at,
                   cal.remote_id if cal else "")


async def _replace(
    core: Core, conn: Connection, cal: Calendar, remote_id: str, resource_id: str, secret: str, expires_at: datetime
) -> None:
    """Store the new channel and drop the calendar's other rows, in one transaction."""
    async with core.store.session() as s:
        await s.execute(delete(WebhookSubscription).where(WebhookSubscription.calendar_id == cal.id))
        s.add(WebhookSubscription(connection_id=conn.id, calendar_id=cal.id, provider=conn.provider,
                                  remote_id=remote_id, resource_id=resource_id, secret=secret,
                                  expires_at=expires_at, status="active"))
    refresh_channels(core, [conn.id])


async def _save_expiry(core: Core, row_id: int, expires_at: datetime) -> None:
    async with core.store.session() as s:
        row = await s.get(WebhookSubscription, row_id)
        if row is not None:
            row.expires_at, row.status = expires_at, "active"
    if row is not None:  # after the commit, so no delivery caches the old row again
        refresh_channels(core, [row.connection_id])


async def _set_status(core: Core, row_id: int, status: str) -> None:
    async with core.store.session() as s:
        row = await s.get(WebhookSubscription, row_id)
        if row is not None:
            row.status = status
    if row is not None:
        refresh_channels(core, [row.connection_id])


async def _close(provider: CalendarProvider) -> None:
    closer: Any = getattr(provider, "aclose", None)
    if closer is not None:
        await closer()


async def _stop_row(core: Core, conn: Connection, cal: Calendar | None, row: WebhookSubscription,
                    *, keep_failed: bool = False) -> PushReport:
    """Stop one channel at the platform and delete its row.

    When the platform fails to (it says "already gone" only as NotFound, which stop() takes as done),
    the row goes anyway (notifications for it are rejected, the channel expires), or with
    `keep_failed` it stays as "stopping", for `retry_stops` (a disconnect must delete it remotely).
    """
    live = row.status in ("active", "stopping")
    report = PushReport(stopped=int(live))
    push = push_capability(conn.provider)
    if cal is not None and live and push is not None:
        provider = open_provider(core, conn, cal)
        try:
            await push.stop(provider, _channel(row, cal))
        except ProviderError as exc:
            report.failed = 1
            report.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            log.warning("push channel not stopped at the provider",
                        extra={"connection": conn.id, "error": type(exc).__name__})
            if keep_failed:
                await _set_status(core, row.id, "stopping")
                report.stopped = 0
                return report
        finally:
            await _close(provider)
    async with core.store.session() as s:
        await s.execute(delete(WebhookSubscription).where(WebhookSubscription.id == row.id))
    refresh_channels(core, [conn.id])
    return report


async def stop_push(core: Core, connection_id: int, *, calendar_ids: list[int] | None = None,
                    keep_failed: bool = False) -> PushReport:
    """Stop the connection's channels (or only those of `calendar_ids`); never raises for the provider.

    `keep_failed`: a channel the platform failed to delete stays as a "stopping" row (see _stop_row).
    """
    if calendar_ids is None:
        return await stop_push_for(core, connection_ids=[connection_id], keep_failed=keep_failed)
    query = select(WebhookSubscription.calendar_id).where(
        WebhookSubscription.connection_id == connection_id, WebhookSubscription.calendar_id.in_(calendar_ids)
    )
    async with core.store.session() as s:
        mine = [c for c in (await s.scalars(query)).all() if c is not None]
    return await stop_push_for(core, calendar_ids=mine)


async def stop_push_for(
    core: Core, *, connection_ids: list[int] | None = None, calendar_ids: list[int] | None = None,
    keep_failed: bool = False,
) -> PushReport:
    """`sync off`, disconnect: stop every channel of these connections and of these calendars."""
    report = PushReport()
    conditions = []
    if connection_ids:
        conditions.append(WebhookSubscription.connection_id.in_(connection_ids))
    if calendar_ids:
        conditions.append(WebhookSubscription.calendar_id.in_(calendar_ids))
    if not conditions:
        return report
    async with core.store.session() as s:
        rows = list((await s.scalars(select(WebhookSubscription).where(or_(*conditions)))).all())
        conns = {c.id: c for c in (await s.scalars(
            select(Connection).where(Connection.id.in_({r.connection_id for r in rows})))).all()}
        cals = list((await s.scalars(select(Calendar).where(Calendar.connection_id.in_(list(conns))))).all())
    for row in rows:
        report.add(await _stop_row(core, conns[row.connection_id], _calendar(cals, row), row,
                                   keep_failed=keep_failed))
    if rows:
        log.info("push channels stopped", extra={"connections": sorted(conns), "count": len(rows)})
    return report


async def renew_push(core: Core) -> None:
    """Periodic job: renew what expires within its margin, re-create what was removed or failed."""
    now = core.clock()
    soonest = now + max(_margins(), default=DEFAULT_MARGIN)
    async with core.store.session() as s:
        ids = set((await s.scalars(
            select(WebhookSubscription.connection_id).where(
                (WebhookSubscription.status != "active") | (WebhookSubscription.expires_at <= soonest)
            )
        )).all())
    app = await ensure_app_webhooks(core)
    if app.created or app.rotated or app.failed:
        log.info("app webhooks", extra={"created": app.created, "rotated": app.rotated, "failed": app.failed})
    async with core.store.session() as s:  # per-connection destinations an app-wide one replaces
        for provider, connection_id in (await s.execute(
                select(Connection.provider, WebhookSubscription.connection_id)
                .join(Connection, Connection.id == WebhookSubscription.connection_id).distinct())).tuples():
            if await uses_app_webhook(core, provider):
                ids.add(connection_id)
    total = PushReport()
    for connection_id in sorted(ids):
        try:
            total.add(await ensure_push(core, connection_id))
        except Exception as exc:  # one connection's failure never stops the others
            total.failed += 1
            log.warning("push renewal failed", extra={"connection": connection_id, "error": type(exc).__name__})
    if total.created or total.renewed or total.stopped or total.failed:
        log.info("push channels renewed", extra={"created": total.created, "renewed": total.renewed,
                                                  "stopped": total.stopped, "failed": total.failed})


async def ensure_push_quietly(core: Core, connection_id: int) -> None:
    """ensure_push for the sync worker: a push problem is logged, never a failed sync."""
    try:
        await ensure_push(core, connection_id)
    except Exception as exc:
        log.warning("push set-up failed", extra={"connection": connection_id, "error": type(exc).__name__})
