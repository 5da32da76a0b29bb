"""Writing outbox operations: one per (appointment, calendar, version, op), idempotent by key.

Used by `sync.engine.apply` for changes read from a source and by the event subscriber for changes made
in chat. An op names *which* copy to bring up to date; the worker reads the appointment's current
state when it runs, so ops queued for older versions converge on the newest one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.engine.plan import CalendarView, Policy, mirror_targets
from sync.store.model import Link, OutboxOp

__all__ = ["ApptRef", "enqueue", "mirror_ops", "op_key"]

_CHUNK = 500


def op_key(appointment_id: int, calendar_id: int, version: int, op: str) -> str:
    """The deterministic idempotency key of one outbox operation."""
    return f"{appointment_id}:{calendar_id}:{version}:{op}"


@dataclass(frozen=True, slots=True)
class ApptRef:
    """What choosing mirror operations needs to know about an appointment."""

    id: int
    version: int
    practitioner_id: int | None
    cancelled: bool = False


def op_row(conn_id: int, cal_id: int, appt_id: int, version: int, op: str, now: datetime,
           key: str | None = None, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "connection_id": conn_id, "calendar_id": cal_id, "appointment_id": appt_id, "op": op,
        "payload": payload or {"version": version},
        "idempotency_key": key or op_key(appt_id, cal_id, version, op), "status": "pending", "attempts": 0,
        "next_attempt_at": now, "created_at": now, "updated_at": now,
    }


def _insert_new(session: AsyncSession, model: type[OutboxOp] | type[Link], keys: list[str]) -> Executable:
    """INSERT that skips a row whose `keys` exist already (the dialect's ON CONFLICT DO NOTHING)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    # Imported here: each dialect module costs megabytes, and a process only ever uses one.
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(model).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(model).on_conflict_do_nothing(index_elements=keys)


async def enqueue(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox rows; a row whose idempotency key exists already is skipped, not an error."""
    if not rows:
        return
    stmt = _insert_new(session, OutboxOp, ["idempotency_key"])
    for i in range(0, len(rows), _CHUNK):
        await session.execute(stmt, list(rows[i:i + _CHUNK]))


async def mirror_ops(
    session: AsyncSession,
    appts: Sequence[ApptRef],
    mirrors: Sequence[CalendarView],
    policy: Policy,
    now: datetime,
    *,
    new: bool = False,
) -> int:
    """Queue the writes that bring every mirror copy of `appts` up to date; returns ops queued.

    Missing copies get a link (remote id unknown yet) and a create; copies on calendars that no
    longer should hold the appointment (practitioner changed, cancelled with cancel_mode=delete)
    get a delete. `new` skips looking up links for appointments that were just inserted.
    """
    by_id = {m.id: m for m in mirrors}
    existing: dict[int, dict[int, Link]] = defaultdict(dict)
    if not new and appts:
        ids = [a.id for a in appts]
        for i in range(0, len(ids), _CHUNK):
            links = await session.scalars(select(Link).where(Link.appointment_id.in_(ids[i:i + _CHUNK])))
            for lk in links:
                if lk.calendar_id in by_id:
                    existing[lk.appointment_id][lk.calendar_id] = lk
    new_links: list[dict[str, Any]] = []
    ops: list[dict[str, Any]] = []
    for a in appts:
        keep = not a.cancelled or policy.cancel_mode == "cancel"
        targets = set(mirror_targets(a.practitioner_id, mirrors)) if keep else set()
        have = existing.get(a.id, {})
        for cal_id in sorted(targets | set(have)):
            cal = by_id[cal_id]
            link = have.get(cal_id)
            if cal_id not in targets:
                if link is not None and link.remote_id is not None:
                    link.state = "deleting"
                    ops.append(op_row(cal.connection_id, cal_id, a.id, a.version, "delete", now))
            elif link is None:
                if not a.cancelled:
                    new_links.append({"appointment_id": a.id, "calendar_id": cal_id, "state": "pending"})
                    ops.append(op_row(cal.connection_id, cal_id, a.id, a.version, "create", now))
            elif link.state not in ("gone",):
                ops.append(op_row(cal.connection_id, cal_id, a.id, a.version,
                                  "create" if link.remote_id is None else "update", now))
    if new_links:
        # A link another connection's sync made meanwhile (a backfill racing a source sync) is the same copy.
        stmt = insert(Link) if new else _insert_new(session, Link, ["appointment_id", "calendar_id"])
        for i in range(0, len(new_links), _CHUNK):
            await session.execute(stmt, new_links[i:i + _CHUNK])
    await enqueue(session, ops)
    return len(ops)
