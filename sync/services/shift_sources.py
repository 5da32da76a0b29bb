"""Where a published schedule comes from besides an uploaded file: an iCalendar feed, or a signed push.

Both live on the practice's shift-source connection (the one `clinicbot shifts import` made): the
feed's URL and the push secret are kept in its encrypted credentials. A feed is read when it is set
(so a bad URL or a malformed feed is refused before anything is stored) and then every 5 minutes;
a push arrives at `/webhooks/shifts/<connection>`, is verified on its raw body (signature, time
window, replay memory) before it is decoded, and is imported like a file. Either way the snapshot
goes through `shifts.import_schedule`, so a feed or a push that did not read whole changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from sync.contract import BadPayload, ConnectionInfo, ProviderError
from sync.contract.integration import WebhookAnswer, WebhookRequest
from sync.contract.shifts import ShiftSnapshot, ShiftSourceSlot
from sync.integrations import registry
from sync.integrations.deliveries import body_key, first_delivery
from sync.integrations.providers import connection_info
from sync.runtime.core import Core
from sync.services import shifts
from sync.services.errors import Invalid, NotFound, ServiceError
from sync.store import audit
from sync.store.model import Connection, Practice

__all__ = ["INLINE_CHANGES", "pull_feed", "pull_feeds_job", "push_limit", "push_secret", "receive_push", "set_feed"]

log = logging.getLogger("clinicbot.shifts")

#: Changes a push publishes before it answers; more go to the periodic publish job.
INLINE_CHANGES = 200


def _slot() -> ShiftSourceSlot:
    slot = registry.get(shifts.INTEGRATION).shift_source
    if slot is None:
        raise Invalid("this build has no shift-schedule reader")
    return slot


async def _read(core: Core, conn: ConnectionInfo, zone: str) -> ShiftSnapshot:
    slot = _slot()
    if slot.read_feed is None:
        raise Invalid("this build cannot read schedule feeds")
    try:
        return await slot.read_feed(conn, core.settings, zone)
    except ProviderError as exc:
        raise Invalid(str(exc)) from None


async def set_feed(core: Core, practice: str | int | None, url: str, *, actor: str) -> shifts.ImportSummary:
    """Read the schedule feed at `url` once, then keep it (encrypted) and import what it said."""
    if not url.strip() or len(url) > 2000:
        raise Invalid("give the feed's address (https://... or webcal://...)")
    async with core.store.session() as s:
        row, _source = await shifts.shift_source(s, practice, actor, create=False)
        zone = row.timezone
    probe = ConnectionInfo(provider=shifts.INTEGRATION, account="schedule feed", config={},
                           credentials={"feed_url": url.strip()}, transport=core.services.http_transport)
    snapshot = await _read(core, probe, zone)
    async with core.store.session() as s:
        row, source = await shifts.shift_source(s, practice, actor, create=True)
        assert source is not None
        had = bool((source.credentials or {}).get("feed_url"))
        source.credentials = {**(source.credentials or {}), "feed_url": url.strip()}
        await audit.record(s, actor=actor, action="shifts.feed", practice_id=row.id,
                           details={"connection_id": source.id, "replaced": had, "origin": snapshot.origin})
    return await shifts.import_schedule(core, practice, snapshot, actor=actor)


async def pull_feed(core: Core, practice: str | int | None, *, actor: str) -> shifts.ImportSummary:
    """Read the practice's schedule feed now and import it."""
    async with core.store.session() as s:
        row, source = await shifts.shift_source(s, practice, actor, create=False)
        if source is None or not (source.credentials or {}).get("feed_url"):
            raise NotFound("no schedule feed is set: `clinicbot shifts feed URL`")
        info, zone = connection_info(source, core), row.timezone
    snapshot = await _read(core, info, zone)
    return await shifts.import_schedule(core, practice, snapshot, actor=actor)


async def pull_feeds_job(core: Core) -> None:
    """The periodic job: read each practice's schedule feed; one bad feed never stops the others."""
    async with core.store.session() as s:
        sources = (await s.scalars(select(Connection).where(Connection.provider == shifts.INTEGRATION)
                                   .order_by(Connection.id))).all()
        practices = [c.practice_id for c in sources
                     if isinstance(c.credentials, dict) and c.credentials.get("feed_url")]
    for practice_id in dict.fromkeys(practices):
        try:
            await pull_feed(core, practice_id, actor="system:shift-feed")
        except ServiceError as exc:
            log.warning("schedule feed not read", extra={"practice_id": practice_id, "error": str(exc)[:200]})
            async with core.store.session() as s:
                _row, source = await shifts.shift_source(s, practice_id, "system", create=False)
                if source is not None:
                    source.last_error, source.last_error_at = str(exc)[:500], core.clock()


async def push_secret(core: Core, practice: str | int | None, *, actor: str) -> tuple[int, str]:
    """A new push secret for the practice's schedule (the old one stops working); (connection id, secret)."""
    secret = secrets.token_urlsafe(32)
    async with core.store.session() as s:
        row, source = await shifts.shift_source(s, practice, actor, create=True)
        assert source is not None
        had = bool((source.credentials or {}).get("push_secret"))
        source.credentials = {**(source.credentials or {}), "push_secret": secret}
        await audit.record(s, actor=actor, action="shifts.push_secret", practice_id=row.id,
                           details={"connection_id": source.id, "rotated": had})
        return source.id, secret


def push_limit() -> int:
    """The largest push body read (a larger one is refused 413 before it is read whole)."""
    return _slot().push_max_bytes


def _answer(status: int, **body: Any) -> WebhookAnswer:
    return WebhookAnswer(status, json.dumps(body), content_type="application/json")


async def receive_push(core: Core, connection_id: int, request: WebhookRequest) -> WebhookAnswer:
    """One push: verified on the raw body, remembered against replays, then read and imported whole."""
    if request.method != "POST":
        return _answer(405, error="POST only")
    slot = _slot()
    if slot.verify_push is None or slot.parse_push is None:
        return _answer(404, error="unknown webhook")
    async with core.store.session() as s:
        source = await s.get(Connection, connection_id)
        if source is None or source.provider != shifts.INTEGRATION:
            return _answer(404, error="unknown webhook")
        secret = str((source.credentials or {}).get("push_secret") or "")
        practice = await s.get(Practice, source.practice_id)
        assert practice is not None
        practice_id, zone = practice.id, practice.timezone
    if not secret:
        return _answer(404, error="unknown webhook")
    why = slot.verify_push(request.body, request.headers, secret, core.clock())
    if why is not None:
        log.warning("schedule push refused", extra={"connection": connection_id, "why": why})
        return _answer(401, error=f"{why}: sign t + '.' + body with the push secret, within 5 minutes")
    delivery = request.headers.get(slot.push_delivery_header, "").strip()[:128] if slot.push_delivery_header else ""
    # Without a delivery id, the signed message is the key: the same signature on the same body is a
    # replay, while a sender's retry after a failure signs anew (a fresh timestamp) and is taken.
    signed = request.headers.get(slot.push_signature_header, "").encode() if slot.push_signature_header else b""
    key = f"delivery:{delivery}" if delivery else body_key(signed + b"\n" + request.body)
    if not await first_delivery(core, shifts.INTEGRATION, connection_id, key):
        return _answer(409, error="this push was received before (replay)")
    actor = f"push:shifts:{connection_id}"
    try:
        snapshot = await asyncio.to_thread(slot.parse_push, request.body, zone)
    except BadPayload as exc:
        return _answer(400, error=str(exc))
    snapshot = replace(snapshot, origin=f"push: {snapshot.origin}"[:200])
    try:
        summary = await shifts.import_schedule(core, practice_id, snapshot, actor=actor)
    except ServiceError as exc:
        return _answer(503, error=f"not stored ({exc}); sign it anew and send it again")
    answer: dict[str, Any] = {"shifts": summary.shifts, "create": summary.to_create, "update": summary.to_update,
                              "delete": summary.to_delete, "unchanged": summary.unchanged,
                              "no_identity": summary.unmapped}
    changes = summary.to_create + summary.to_update + summary.to_delete
    if not changes:
        return _answer(200, **answer, published="nothing to change")
    if changes > INLINE_CHANGES:
        return _answer(202, **answer, published=f"within {shifts.PUBLISH_EVERY_SECONDS // 60} minutes")
    try:
        done = await shifts.publish(core, practice_id, actor=actor)
    except ServiceError as exc:
        return _answer(202, **answer, published=f"stored, not yet published: {exc}")
    return _answer(200, **answer, published={"created": done.created, "updated": done.updated,
                                             "deleted": done.deleted, "failed": done.failed})
