"""Form submissions polled from a platform (HubSpot forms), each one a lead: the leader's job.

For each active connection whose integration has a `lead_feed` and whose config names forms, each
form is read from its mark on (the newest submission time taken, and the submission ids taken at
that time; a form not read before starts at the connection's creation, and at most BACKFILL back: a
form named long after the connect does not turn months of old submissions into leads), oldest
first; each submission goes through the same intake as a signed webhook (sync.notify.leads.take_lead: stored, merged or
refused as a duplicate by its submission id, then the staff card), and the mark moves past it.
The marks live in the connection's config (`form_marks`), written after each submission, so a crash
takes nothing twice (the intake refuses a submission id taken before) and loses nothing.

A submission the intake refuses (no email or phone) is logged and passed over (it stays in the
platform); an unknown form is logged and the other forms are read; a 429 stops that connection's
run until the next one; an expired grant marks the connection for reconnecting. One connection
failing never stops the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from sync.contract import AuthExpired, BadPayload, NotFound, ProviderError, RateLimited, Refused
from sync.contract.leads import LeadFeed
from sync.engine.reconnect import ExpiredConnection, tell_reconnect
from sync.integrations import registry
from sync.integrations.providers import connection_info
from sync.notify.leads import take_lead
from sync.runtime.core import Core
from sync.runtime.locks import SyncBusy, connection_lock
from sync.store import audit
from sync.store.model import Connection

__all__ = ["POLL_EVERY_SECONDS", "FormStats", "poll_forms", "poll_forms_job"]

log = logging.getLogger("clinicbot.lead_forms")

POLL_EVERY_SECONDS = 120
ACTOR = "system:leads"
MARKS = "form_marks"
#: How far back a form read for the first time goes (the intake's own merge window).
BACKFILL = timedelta(days=30)


@dataclass
class FormStats:
    forms: int = 0
    taken: int = 0
    duplicates: int = 0
    refused: int = 0
    failed: int = 0


def _ms(when: datetime) -> int:
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


async def poll_forms(core: Core) -> FormStats:
    """Read every connection's forms once; one failing connection never stops the others."""
    stats = FormStats()
    feeds = {i.name for i in registry.integrations() if i.lead_feed is not None}
    if not feeds:
        return stats
    async with core.store.session() as s:
        conns = (await s.scalars(select(Connection).where(Connection.provider.in_(feeds),
                                                          Connection.status == "active")
                                 .order_by(Connection.id))).all()
        due = [c.id for c in conns if registry.get(c.provider).lead_feed.forms(c.config or {})]  # type: ignore[union-attr]
    for conn_id in due:
        try:
            async with connection_lock(core, conn_id):
                await _poll_connection(core, conn_id, stats)
        except SyncBusy:
            continue
        except Exception:  # one connection's surprise never stops the others
            stats.failed += 1
            log.exception("form poll failed", extra={"connection_id": conn_id})
    return stats


async def poll_forms_job(core: Core) -> None:
    stats = await poll_forms(core)
    if stats.taken or stats.refused or stats.failed:
        log.info("form submissions read", extra={"taken": stats.taken, "refused": stats.refused,
                                                 "failed": stats.failed})


async def _poll_connection(core: Core, conn_id: int, stats: FormStats) -> None:
    async with core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        if conn is None or conn.status != "active":
            return
        slot = registry.get(conn.provider).lead_feed
        if slot is None:
            return
        forms = slot.forms(conn.config or {})
        marks: dict[str, Any] = dict((conn.config or {}).get(MARKS) or {})
        start = max(_ms(conn.created_at), _ms(core.clock() - BACKFILL))
        provider = conn.provider
        feed: LeadFeed = slot.open(connection_info(conn, core), core.settings)
    try:
        for form in forms:
            stats.forms += 1
            mark = marks.get(form) if isinstance(marks.get(form), dict) else None
            since = int(mark["ms"]) if mark and isinstance(mark.get("ms"), int) else start
            taken_at_mark = set(mark.get("ids") or []) if mark else set()
            try:
                found = await feed.submissions(form, since)
            except NotFound as exc:
                log.warning("form not found", extra={"connection_id": conn_id, "form": form, "error": str(exc)[:200]})
                continue
            for submission in found:
                sid = submission.lead.submission_id
                if submission.submitted_ms == since and sid in taken_at_mark:
                    continue
                try:
                    outcome = await take_lead(core, conn_id, provider, submission.lead)
                except (BadPayload, Refused) as exc:
                    stats.refused += 1
                    log.warning("form submission refused", extra={"connection_id": conn_id, "form": form,
                                                                  "submission": sid, "error": str(exc)[:200]})
                else:
                    if outcome.status == "duplicate":
                        stats.duplicates += 1
                    else:
                        stats.taken += 1
                if submission.submitted_ms > since:
                    since, taken_at_mark = submission.submitted_ms, set()
                taken_at_mark.add(sid)
                marks[form] = {"ms": since, "ids": sorted(taken_at_mark)}
                await _save_marks(core, conn_id, form, marks[form])
    except RateLimited as exc:
        log.info("form poll rate limited", extra={"connection_id": conn_id, "wait": exc.retry_after})
    except AuthExpired as exc:
        await _expired(core, conn_id, exc)
    except ProviderError as exc:
        stats.failed += 1
        log.warning("form poll failed", extra={"connection_id": conn_id, "error": str(exc)[:200]})
    finally:
        await feed.aclose()


async def _save_marks(core: Core, conn_id: int, form: str, mark: dict[str, Any]) -> None:
    async with core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        if conn is None:
            return
        config = dict(conn.config or {})
        config[MARKS] = {**dict(config.get(MARKS) or {}), form: mark}
        conn.config = config  # a new dict, so the JSON column is written


async def _expired(core: Core, conn_id: int, exc: AuthExpired) -> None:
    expired = None
    async with core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        if conn is not None and conn.status != "auth_expired":
            conn.status, conn.last_error, conn.last_error_at = "auth_expired", str(exc)[:300], core.clock()
            await audit.record(s, actor=ACTOR, action="connection.auth_expired", practice_id=conn.practice_id,
                               details={"connection_id": conn.id})
            expired = ExpiredConnection.of(conn)
    if expired is not None:
        await tell_reconnect(core, expired)
