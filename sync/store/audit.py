"""The tamper-evident audit log: append-only and hash-chained.

Each row's hash covers its own fields and the previous row's hash, and rows carry a gapless
sequence number. `verify` walks the chain and names the first row that was edited, removed or
moved. Patient fields never enter the log as values: `record` replaces them with a short keyed
fingerprint, so the log shows *that* a client's name changed without carrying it.

Appends are serialized: on PostgreSQL by a transaction-scoped advisory lock, everywhere by the
unique `seq` (a concurrent append that lost the race fails and its transaction rolls back).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from sync.store.crypto import current_box
from sync.store.model import AuditEntry, utcnow

__all__ = ["GENESIS", "PHI_FIELDS", "AuditProblem", "export", "record", "verify"]

GENESIS = "0" * 64
#: Fields whose values are patient data: logged as fingerprints only.
PHI_FIELDS = frozenset(
    {"client_name", "client_email", "notes", "title", "summary", "description", "location_text", "cancel_reason"}
)
_ADVISORY_KEY = 726354002


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _fingerprint(value: Any) -> str:
    key = current_box().key_id.encode()
    digest = hmac.new(key, json.dumps(_canonical(value), sort_keys=True).encode(), hashlib.sha256)
    return "fp:" + digest.hexdigest()[:12]


def scrub(fields: dict[str, Any] | None) -> dict[str, Any] | None:
    """Replace patient fields by fingerprints; keep everything else JSON-safe."""
    if fields is None:
        return None
    return {
        k: (_fingerprint(v) if k in PHI_FIELDS and v not in (None, "") else _canonical(v)) for k, v in fields.items()
    }


#: One encoder for the chain hash (json.dumps with options builds a new one per call).
_HASH_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _row_hash(entry: AuditEntry) -> str:
    body = _HASH_JSON.encode(
        {
            "seq": entry.seq,
            "at": entry.at.isoformat(),
            "actor": entry.actor,
            "action": entry.action,
            "practice_id": entry.practice_id,
            "appointment_id": entry.appointment_id,
            "before": entry.before,
            "after": entry.after,
            "details": entry.details,
            "prev": entry.prev_hash,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


async def _next(session: AsyncSession) -> tuple[int, str]:
    """(seq, previous hash) for the next entry, under the append lock on PostgreSQL.

    Once this transaction has appended, the tail is remembered: nobody else can append until it
    commits (the advisory lock on PostgreSQL, the write lock on SQLite), so a sync that appends
    page by page reads the tail once, not once per page.
    """
    tail = session.info.get(_TAIL)
    if tail is not None and tail[0] is session.sync_session.get_transaction():
        return tail[1] + 1, tail[2]
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
    last = (
        await session.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1))
    ).first()
    return (last[0] + 1, last[1]) if last else (1, GENESIS)


def _remember(session: AsyncSession, seq: int, hash_: str) -> None:
    session.info[_TAIL] = (session.sync_session.get_transaction(), seq, hash_)


_TAIL = "clinicbot.audit_tail"


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    practice_id: int | None = None,
    appointment_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction. The one function every feature calls."""
    seq, prev = await _next(session)
    entry = AuditEntry(
        seq=seq,
        at=(at or utcnow()).astimezone(UTC),
        actor=actor,
        action=action,
        practice_id=practice_id,
        appointment_id=appointment_id,
        before=scrub(before),
        after=scrub(after),
        details=scrub(details),
        prev_hash=prev,
    )
    entry.hash = _row_hash(entry)
    session.add(entry)
    await session.flush()
    _remember(session, seq, entry.hash)
    return entry


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """The first place the chain breaks."""

    seq: int | None
    row_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"row id {self.row_id} (seq {self.seq})" if self.row_id is not None else f"seq {self.seq}"
        return f"{where}: {self.reason}"


async def verify(session: AsyncSession) -> tuple[int, AuditProblem | None]:
    """Walk the chain in id order; return (rows checked, first problem or None)."""
    present = set((await session.scalars(select(AuditEntry.seq))).all())
    prev_hash = GENESIS
    expected_seq = 1
    last_id = 0
    count = 0
    async for entry in _stream(session):
        count += 1
        if entry.seq != expected_seq:
            if entry.seq > expected_seq and expected_seq not in present:
                reason = f"rows with seq {expected_seq}..{entry.seq - 1} are missing (deleted)"
            else:
                reason = f"out of order: expected seq {expected_seq}, found {entry.seq} (reordered)"
            return count, AuditProblem(entry.seq, entry.id, reason)
        if entry.id <= last_id:
            return count, AuditProblem(entry.seq, entry.id, "row ids are out of order (reordered)")
        if entry.prev_hash != prev_hash:
            return count, AuditProblem(entry.seq, entry.id, "does not link to the previous row (removed or reordered)")
        if _row_hash(entry) != entry.hash:
            return count, AuditProblem(entry.seq, entry.id, "contents do not match its hash (edited)")
        prev_hash = entry.hash
        expected_seq += 1
        last_id = entry.id
    return count, None


async def _stream(session: AsyncSession, since: datetime | None = None) -> AsyncIterator[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.id)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    result = await session.stream_scalars(stmt.execution_options(yield_per=1000))
    async for entry in result:
        yield entry


EXPORT_FIELDS = (
    "seq", "at", "actor", "action", "practice_id", "appointment_id", "before", "after", "details", "prev_hash", "hash",
)


def _export_row(entry: AuditEntry) -> dict[str, Any]:
    return {f: _canonical(getattr(entry, f)) for f in EXPORT_FIELDS}


async def export(session: AsyncSession, fmt: str, since: datetime | None = None) -> AsyncIterator[str]:
    """Yield the log as CSV or JSON Lines text chunks."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError("format must be csv or jsonl")
    if fmt == "csv":
        yield _csv_line(EXPORT_FIELDS)
    async for entry in _stream(session, since):
        row = _export_row(entry)
        if fmt == "jsonl":
            yield json.dumps(row, sort_keys=True) + "\n"
        else:
            yield _csv_line(
                json.dumps(row[f], sort_keys=True) if isinstance(row[f], (dict, list)) else row[f]
                for f in EXPORT_FIELDS
            )


def _csv_line(values: Iterable[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return buf.getvalue()


async def count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one())


async def record_many(session: AsyncSession, entries: list[dict[str, Any]], at: datetime | None = None) -> int:
    """Append many entries with one INSERT (bulk imports); the chain is the same as `record`'s.

    Each entry is a dict of `record`'s keyword arguments (actor, action, practice_id, ...).
    """
    if not entries:
        return 0
    from types import SimpleNamespace

    from sqlalchemy import insert

    seq, prev = await _next(session)
    when = (at or utcnow()).astimezone(UTC)
    table = AuditEntry.__table__
    # Rows are built and inserted 1,000 at a time: a 10,000-row import never holds all of them.
    for i in range(0, len(entries), 1000):
        rows: list[dict[str, Any]] = []
        for e in entries[i:i + 1000]:
            row = {
                "seq": seq, "at": when, "actor": e["actor"], "action": e["action"],
                "practice_id": e.get("practice_id"), "appointment_id": e.get("appointment_id"),
                "before": scrub(e.get("before")), "after": scrub(e.get("after")), "details": scrub(e.get("details")),
                "prev_hash": prev,
            }
            row["hash"] = prev = _row_hash(SimpleNamespace(**row))  # type: ignore[arg-type]
            rows.append(row)
            seq += 1
        await session.execute(insert(table), rows)  # type: ignore[arg-type]
    _remember(session, seq - 1, prev)
    return len(entries)
