"""The tamper-evident audit log: append-only and chained with a keyed MAC.

Each row's hash is an HMAC (key derived from CLINICBOT_SECRET_KEY) over its own fields and the
previous row's hash, and rows carry a gapless sequence number. The chain's head (last seq and
hash) is kept, signed, in `audit_head` by the same transaction that appends, and `checkpoint`
exports signed copies of it (a log line, a file) on a schedule. `verify` walks the chain and
names the first row that was edited, removed, moved, re-chained or appended, and a tail cut off.

What someone with write access to the database but without the secret key can and cannot hide:
- cannot edit, delete, reorder or insert a row, nor re-chain the rows after doing so (no key);
- cannot cut rows off the end, nor empty the table: the signed head still names the last row;
- cannot delete or rewrite the head: a missing head or a wrong signature is reported;
- CAN put back an older head row they copied earlier together with cutting the chain back to it.
  Only a checkpoint exported outside the database since then catches that (`verify_checkpoints`,
  `clinicbot audit verify --checkpoints FILE`): keep those exports where the database's users
  cannot write.
Rows written before the keyed chain (plain SHA-256, `keyed_from`) are anchored by the first keyed
row that links to them. With the secret key, an attacker can rewrite everything.

Patient fields never enter the log as values: `record` replaces them with a short keyed
fingerprint, so the log shows *that* a client's name changed without carrying it.

Appends are serialized: on PostgreSQL by a transaction-scoped advisory lock, on SQLite by its write
lock, everywhere by the unique `seq`. `record` only queues its entry in the session; the queue is
chained and inserted just before the commit, so the lock is held from there to the commit, not
for the whole transaction (writers in different transactions no longer queue behind each other's
reads and round trips). Bulk `record_many` appends at once and keeps the lock until the commit.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.util import find_tables

from sync.store.bulk import insert_many
from sync.store.crypto import SecretBox, current_box
from sync.store.model import AuditEntry, AuditHead, utcnow

__all__ = [
    "GENESIS",
    "PHI_FIELDS",
    "AuditProblem",
    "Checkpoint",
    "checkpoint",
    "export",
    "record",
    "verify",
    "verify_checkpoints",
]

log = logging.getLogger("clinicbot.audit")

GENESIS = "0" * 64
#: Fields whose values are patient data: logged as fingerprints only.
PHI_FIELDS = frozenset(
    {"client_name", "client_email", "client_phone", "notes", "title", "summary", "description", "location_text",
     "cancel_reason"}
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


_subkeys: dict[tuple[int, str], bytes] = {}


def _subkey(purpose: str) -> bytes:
    """The installed key's subkey for `purpose`, derived once per key."""
    box: SecretBox = current_box()
    found = _subkeys.get((id(box), purpose))
    if found is None:
        found = _subkeys[(id(box), purpose)] = box.derive(purpose)
    return found


def _mac(purpose: str, message: str) -> str:
    return hmac.new(_subkey(purpose), message.encode(), hashlib.sha256).hexdigest()


def _row_hash(entry: AuditEntry, keyed: bool = True) -> str:
    """The row's link: HMAC with the chain key; plain SHA-256 only for rows older than the keyed chain."""
    return _hash_of(entry.seq, entry.at.isoformat(), entry.actor, entry.action, entry.practice_id,
                    entry.appointment_id, entry.before, entry.after, entry.details, entry.prev_hash, keyed)


def _hash_of(seq: int, at: str, actor: str, action: str, practice_id: int | None, appointment_id: int | None,
             before: Any, after: Any, details: Any, prev: str, keyed: bool = True) -> str:
    """`_row_hash` of a row's values (`at` in isoformat): the one place the chain's hash is defined."""
    body = _HASH_JSON.encode(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "practice_id": practice_id,
            "appointment_id": appointment_id,
            "before": before,
            "after": after,
            "details": details,
            "prev": prev,
        }
    )
    if keyed:
        return hmac.digest(_subkey("audit-chain"), body.encode(), "sha256").hex()
    return hashlib.sha256(body.encode()).hexdigest()


def _head_mac(seq: int, hash_: str, keyed_from: int) -> str:
    return _mac("audit-head", f"{seq}:{hash_}:{keyed_from}")


def _lock_and_read_tail(session: Session) -> tuple[int, str, int | None]:
    """(last seq, its hash, keyed_from) under the append lock; remembered for the transaction.

    Once this transaction holds the lock (the advisory lock on PostgreSQL, the write lock on
    SQLite), nobody else can append until it commits, so the tail is read once per transaction.
    """
    transaction = session.get_transaction()
    tail = session.info.get(_TAIL)
    if tail is not None and tail[0] is transaction:
        return tail[1], tail[2], tail[3]
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
    elif bind.dialect.name == "sqlite":
        # Take SQLite's write lock before reading the tail, so the read cannot go stale before
        # the insert (a transaction that already wrote holds it already).
        conn = session.connection()
        driver = conn.connection.driver_connection
        if driver is not None and not getattr(driver, "in_transaction", True):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    # One round trip for the tail and the head's keyed_from (the lock is held while it runs).
    head = select(AuditHead.keyed_from).where(AuditHead.id == 1).scalar_subquery()
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash, head).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    if last is not None:
        seq, hash_, keyed_from = int(last[0]), str(last[1]), last[2]
    else:
        seq, hash_ = 0, GENESIS
        keyed_from = session.execute(select(head)).scalar()
    session.info[_TAIL] = (transaction, seq, hash_, keyed_from)
    return seq, hash_, keyed_from


def _append_pending(session: Session) -> None:
    """Chain and insert the entries `record` queued in this transaction, under the append lock.

    Called just before the commit (and before anything in the transaction reads the log), so the
    lock that serializes appends is held from here to the commit only, not for the whole
    transaction. The entries keep the order (and the times) in which they were recorded.
    """
    pending: list[tuple[AuditEntry, Any]] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    seq, prev, keyed_from = _lock_and_read_tail(session)
    started = time.perf_counter()
    savepoint = session.get_nested_transaction()
    if savepoint is not None:
        # Inserted inside a savepoint: if it rolls back, entries recorded outside it go back in
        # the queue (`_after_soft_rollback`), so their change is not left unaudited.
        session.info.setdefault(_APPENDED, []).append((savepoint, [(_copy(e), made_in) for e, made_in in pending]))
    for entry, _ in pending:
        seq += 1
        entry.seq = seq
        entry.prev_hash = prev
        entry.hash = prev = _row_hash(entry)
        session.add(entry)
    session.flush()
    session.info[_TAIL] = (session.get_transaction(), seq, prev, keyed_from)
    session.info[_LOCKED_AT] = session.info.get(_LOCKED_AT, started)


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's release: the entries wait for the real commit
    _append_pending(session)
    session.info.pop(_APPENDED, None)
    _write_head(session)


def _after_soft_rollback(session: Session, previous: Any) -> None:
    """Forget what a rolled-back transaction or savepoint recorded, and the tail it read.

    PostgreSQL releases a lock taken inside a rolled-back savepoint, so after any rollback the
    next append takes the lock and reads the tail again.
    """
    session.info.pop(_TAIL, None)
    if previous.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_APPENDED, None)
        return
    requeue: list[tuple[AuditEntry, Any]] = []
    groups = []
    for inserted_in, entries in session.info.get(_APPENDED, []):
        if _within(inserted_in, previous):
            requeue.extend((e, made_in) for e, made_in in entries if not _within(made_in, previous))
        else:
            groups.append((inserted_in, entries))
    session.info[_APPENDED] = groups
    pending = [(e, made_in) for e, made_in in session.info.get(_PENDING, []) if not _within(made_in, previous)]
    session.info[_PENDING] = requeue + pending


def _within(transaction: Any, outer: Any) -> bool:
    """Whether `transaction` is `outer` or nested inside it."""
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


def _copy(entry: AuditEntry) -> AuditEntry:
    """A fresh, unchained copy of a queued entry (to queue again)."""
    return AuditEntry(at=entry.at, actor=entry.actor, action=entry.action, practice_id=entry.practice_id,
                      appointment_id=entry.appointment_id, before=entry.before, after=entry.after,
                      details=entry.details)


def _before_read(state: ORMExecuteState) -> None:
    """A query on the log inside a transaction that has queued entries sees them: append first."""
    session = state.session
    if not session.info.get(_PENDING) or not state.is_select:
        return
    statement = state.statement
    if isinstance(statement, ClauseElement) and _TABLE in find_tables(statement, include_crud=True):
        _append_pending(session)


def _hook(session: AsyncSession) -> None:
    sync_session = session.sync_session
    if sync_session.info.get(_HOOKED):
        return
    event.listen(sync_session, "before_commit", _before_commit)
    event.listen(sync_session, "after_soft_rollback", _after_soft_rollback)
    event.listen(sync_session, "do_orm_execute", _before_read)
    sync_session.info[_HOOKED] = True


def _write_head(sync_session: Session) -> None:
    """Move the signed head to the last row appended in the committing transaction.

    A missing head (deleted by hand) is written again with the keyed chain starting at 1, so
    `verify` still reports every older row it cannot account for.
    """
    tail = sync_session.info.get(_TAIL)
    if tail is None or tail[0] is not sync_session.get_transaction():
        return
    _, seq, hash_, keyed_from = tail
    values = {"seq": seq, "hash": hash_, "at": utcnow()}
    if keyed_from is None:
        sync_session.add(AuditHead(id=1, keyed_from=1, mac=_head_mac(seq, hash_, 1), **values))
        sync_session.flush()
    else:
        sync_session.execute(
            update(AuditHead).where(AuditHead.id == 1).values(mac=_head_mac(seq, hash_, keyed_from), **values)
        )
    sync_session.info.pop(_TAIL, None)
    locked_at = sync_session.info.pop(_LOCKED_AT, None)
    if locked_at is not None:
        LOCK_STATS.appends += 1
        LOCK_STATS.until_commit += time.perf_counter() - locked_at


@dataclass(slots=True)
class LockStats:
    """Time from taking the append lock to the commit's last statement, summed over commits (bench)."""

    appends: int = 0
    until_commit: float = 0.0


LOCK_STATS = LockStats()
_TABLE = AuditEntry.__table__
_PENDING = "clinicbot.audit_pending"
_APPENDED = "clinicbot.audit_appended_in_savepoints"
_LOCKED_AT = "clinicbot.audit_locked_at"
_HOOKED = "clinicbot.audit_head_hooked"
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
    """Append one entry in the caller's transaction. The one function every feature calls.

    The entry is queued in the session and chained (seq, prev_hash, hash) and inserted just
    before the transaction commits, or before the transaction next reads the log; a rollback
    (of the transaction, or of the savepoint it was recorded in) drops it.
    """
    entry = AuditEntry(
        at=(at or utcnow()).astimezone(UTC),
        actor=actor,
        action=action,
        practice_id=practice_id,
        appointment_id=appointment_id,
        before=scrub(before),
        after=scrub(after),
        details=scrub(details),
    )
    sync_session = session.sync_session
    _hook(session)
    made_in = sync_session.get_nested_transaction() or sync_session.get_transaction()
    sync_session.info.setdefault(_PENDING, []).append((entry, made_in))
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
    """Walk the chain in id order, then check the signed head; return (rows checked, first problem or None)."""
    # The head is read first: rows appended while this runs only lengthen the chain past it.
    head = (await session.scalars(select(AuditHead).where(AuditHead.id == 1))).first()
    keyed_from = head.keyed_from if head is not None else 1
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
        if not hmac.compare_digest(_row_hash(entry, keyed=entry.seq >= keyed_from), entry.hash):
            return count, AuditProblem(entry.seq, entry.id, "contents do not match its hash (edited or forged)")
        if head is not None and entry.seq == head.seq and entry.hash != head.hash:
            return count, AuditProblem(entry.seq, entry.id, "differs from the signed head checkpoint (rewritten)")
        prev_hash = entry.hash
        expected_seq += 1
        last_id = entry.id
    return count, _check_head(head, expected_seq - 1)


def _check_head(head: AuditHead | None, last_seq: int) -> AuditProblem | None:
    """The head names the chain's end: missing, unsigned with keyed rows, forged, or past the last row."""
    if head is None:
        return AuditProblem(None, None, "the signed head checkpoint (audit_head) is missing (deleted)")
    if head.mac is None:
        if last_seq >= head.keyed_from:
            return AuditProblem(head.seq, None, "the head checkpoint lost its signature (edited)")
    elif not hmac.compare_digest(head.mac, _head_mac(head.seq, head.hash, head.keyed_from)):
        return AuditProblem(head.seq, None, "the head checkpoint's signature is wrong (forged or edited)")
    if last_seq < head.seq:
        missing = f"seq {head.seq}" if last_seq + 1 == head.seq else f"seq {last_seq + 1}..{head.seq}"
        return AuditProblem(head.seq, None, f"the signed head names {missing}, which is missing (truncated)")
    return None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed copy of the chain's end, exported where the database's users cannot rewrite it."""

    seq: int
    hash: str
    at: str
    mac: str

    def line(self) -> str:
        """One JSON line: what the scheduled export writes and `verify_checkpoints` reads."""
        return json.dumps({"seq": self.seq, "hash": self.hash, "at": self.at, "mac": self.mac}, sort_keys=True)

    @staticmethod
    def signature(seq: int, hash_: str, at: str) -> str:
        return _mac("audit-checkpoint", f"{seq}:{hash_}:{at}")


async def checkpoint(session: AsyncSession, at: datetime | None = None) -> Checkpoint:
    """Sign the chain's current end (last seq and hash)."""
    last = (
        await session.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1))
    ).first()
    seq, hash_ = (int(last[0]), str(last[1])) if last else (0, GENESIS)
    when = (at or utcnow()).astimezone(UTC).isoformat()
    return Checkpoint(seq, hash_, when, Checkpoint.signature(seq, hash_, when))


def _parse_checkpoint(number: int, line: str) -> Checkpoint | AuditProblem:
    try:
        data = json.loads(line)
        mark = Checkpoint(int(data["seq"]), str(data["hash"]), str(data["at"]), str(data["mac"]))
    except (ValueError, TypeError, KeyError, RecursionError):
        return AuditProblem(None, None, f"checkpoint line {number} is not a clinicbot checkpoint")
    if not hmac.compare_digest(mark.mac, Checkpoint.signature(mark.seq, mark.hash, mark.at)):
        return AuditProblem(mark.seq, None, f"checkpoint line {number}'s signature is wrong (forged or another key)")
    return mark


async def verify_checkpoints(session: AsyncSession, lines: Iterable[str]) -> AuditProblem | None:
    """Check exported checkpoints against the chain: each one's row must still be there, unchanged.

    Together with `verify` this catches a chain cut back to an older head that was put back.
    """
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        mark = _parse_checkpoint(number, raw)
        if isinstance(mark, AuditProblem):
            return mark
        if mark.seq == 0:
            continue
        found = (await session.execute(select(AuditEntry.hash).where(AuditEntry.seq == mark.seq))).scalar()
        if found is None:
            return AuditProblem(mark.seq, None, f"named by the checkpoint of {mark.at}, is missing (truncated)")
        if found != mark.hash:
            return AuditProblem(mark.seq, None, f"differs from the checkpoint of {mark.at} (rewritten)")
    return None


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
    _hook(session)
    await session.run_sync(_append_pending)
    last, prev, keyed_from = await session.run_sync(_lock_and_read_tail)
    seq = last + 1
    started = time.perf_counter()
    when = (at or utcnow()).astimezone(UTC)
    at_text = when.isoformat()
    table = AuditEntry.__table__
    # Rows are built and inserted 1,000 at a time: a 10,000-row import never holds all of them.
    for i in range(0, len(entries), 1000):
        rows: list[tuple[Any, ...]] = []
        for e in entries[i:i + 1000]:
            actor, action = e["actor"], e["action"]
            practice_id, appointment_id = e.get("practice_id"), e.get("appointment_id")
            before, after, details = scrub(e.get("before")), scrub(e.get("after")), scrub(e.get("details"))
            hash_ = _hash_of(seq, at_text, actor, action, practice_id, appointment_id, before, after, details, prev)
            rows.append((seq, when, actor, action, practice_id, appointment_id, before, after, details, prev, hash_))
            prev = hash_
            seq += 1
        await insert_many(session, table, _COLUMNS, rows)  # type: ignore[arg-type]
    session.info[_TAIL] = (session.sync_session.get_transaction(), seq - 1, prev, keyed_from)
    session.info.setdefault(_LOCKED_AT, started)
    return len(entries)


_COLUMNS = ("seq", "at", "actor", "action", "practice_id", "appointment_id", "before", "after", "details",
            "prev_hash", "hash")
