"""The audit chain: verify finds edited, deleted and reordered rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.store import audit
from sync.store.model import AuditEntry


async def _fill(core: Core, n: int = 5) -> None:
    async with core.store.session() as s:
        for i in range(n):
            await audit.record(s, actor="cli:test", action="test.step", appointment_id=i,
                               before={"client_name": "Jane Roe"}, after={"start": f"2026-01-0{i + 1}"})


async def _verify(core: Core) -> tuple[int, audit.AuditProblem | None]:
    async with core.store.session() as s:
        return await audit.verify(s)


async def test_intact_chain_verifies(core: Core) -> None:
    await _fill(core)
    count, problem = await _verify(core)
    assert problem is None
    assert count == 5


async def test_patient_fields_are_fingerprinted(core: Core) -> None:
    await _fill(core, 1)
    async with core.store.session() as s:
        row = (await s.scalars(select(AuditEntry))).one()
    assert "Jane" not in str(row.before)
    assert str(row.before["client_name"]).startswith("fp:")


async def test_edited_row_is_named(core: Core) -> None:
    await _fill(core)
    async with core.store.session() as s:
        await s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="cli:mallory"))
    _, problem = await _verify(core)
    assert problem is not None and problem.seq == 3 and "edited" in problem.reason


async def test_deleted_row_is_named(core: Core) -> None:
    await _fill(core)
    async with core.store.session() as s:
        await s.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    _, problem = await _verify(core)
    assert problem is not None and problem.seq == 3 and "missing" in problem.reason


async def test_reordered_rows_are_found(core: Core) -> None:
    await _fill(core)
    async with core.store.session() as s:
        # Swap the contents of rows 2 and 4 wholesale (seq, hashes and all).
        rows = {r.seq: r for r in (await s.scalars(select(AuditEntry))).all()}
        cols = ["seq", "at", "actor", "action", "appointment_id", "before", "after", "prev_hash", "hash"]
        two = {c: getattr(rows[2], c) for c in cols}
        four = {c: getattr(rows[4], c) for c in cols}
        await s.execute(update(AuditEntry).where(AuditEntry.id == rows[2].id).values(seq=-2))
        await s.execute(update(AuditEntry).where(AuditEntry.id == rows[4].id).values(**two))
        await s.execute(update(AuditEntry).where(AuditEntry.id == rows[2].id).values(**four))
    _, problem = await _verify(core)
    assert problem is not None and problem.seq == 4 and "order" in problem.reason


async def test_export_jsonl_and_csv(core: Core) -> None:
    await _fill(core, 3)
    async with core.store.session() as s:
        jsonl = "".join([chunk async for chunk in audit.export(s, "jsonl")])
        csv_text = "".join([chunk async for chunk in audit.export(s, "csv")])
    assert len(jsonl.splitlines()) == 3
    lines = csv_text.splitlines()
    assert lines[0].startswith("seq,at,actor,action") and len(lines) == 4


async def test_mixed_appends_in_one_transaction_and_across_transactions_chain(core: Core) -> None:
    """record and record_many remember the tail within a transaction; a later one reads it again."""
    entries = [{"actor": "system:sync", "action": "appointment.created", "appointment_id": i} for i in range(3)]
    async with core.store.session() as s:
        await audit.record_many(s, entries)
        await audit.record(s, actor="cli:test", action="test.step")
        await audit.record_many(s, entries)
    await _fill(core, 2)  # other sessions append between
    async with core.store.session() as s:
        await audit.record(s, actor="cli:test", action="test.last")
        seqs = list((await s.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq))).all())
    assert seqs == list(range(1, 11))
    assert await _verify(core) == (10, None)


def _sha256_hash(r: AuditEntry, seq: int | None = None, prev: str | None = None) -> str:
    """What an attacker with database access but no key can compute: the old, unkeyed row hash."""
    import hashlib
    import json

    body = json.dumps(
        {"seq": r.seq if seq is None else seq, "at": r.at.isoformat(), "actor": r.actor, "action": r.action,
         "practice_id": r.practice_id, "appointment_id": r.appointment_id, "before": r.before,
         "after": r.after, "details": r.details, "prev": r.prev_hash if prev is None else prev},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _sha256_rechain(rows: list[AuditEntry]) -> list[dict[str, object]]:
    """The whole chain recomputed with the unkeyed hash, renumbered from 1."""
    prev = audit.GENESIS
    out: list[dict[str, object]] = []
    for seq, r in enumerate(rows, start=1):
        h = _sha256_hash(r, seq, prev)
        out.append({"id": r.id, "seq": seq, "prev_hash": prev, "hash": h})
        prev = h
    return out


async def _rows(core: Core) -> list[AuditEntry]:
    async with core.store.session() as s:
        return list((await s.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all())


async def test_deleting_the_last_row_is_caught(core: Core) -> None:
    await _fill(core)
    async with core.store.session() as s:
        await s.execute(delete(AuditEntry).where(AuditEntry.seq == 5))
    _, problem = await _verify(core)
    assert problem is not None and "truncated" in problem.reason and "seq 5" in problem.reason


async def test_deleting_the_last_three_rows_is_caught(core: Core) -> None:
    await _fill(core)
    async with core.store.session() as s:
        await s.execute(delete(AuditEntry).where(AuditEntry.seq >= 3))
    _, problem = await _verify(core)
    assert problem is not None and "truncated" in problem.reason and "3..5" in problem.reason


async def test_deleting_every_row_is_caught(core: Core) -> None:
    await _fill(core)
    async with core.store.session() as s:
        await s.execute(delete(AuditEntry))
    count, problem = await _verify(core)
    assert count == 0
    assert problem is not None and "truncated" in problem.reason


async def test_deleting_the_head_checkpoint_is_caught(core: Core) -> None:
    from sync.store.model import AuditHead

    await _fill(core)
    async with core.store.session() as s:
        await s.execute(delete(AuditEntry))
        await s.execute(delete(AuditHead))
    _, problem = await _verify(core)
    assert problem is not None and "checkpoint" in problem.reason


async def test_rechaining_an_edit_with_plain_sha256_is_caught(core: Core) -> None:
    await _fill(core)
    async with core.store.session() as s:
        await s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="cli:mallory"))
    for row in _sha256_rechain(await _rows(core)):
        async with core.store.session() as s:
            await s.execute(update(AuditEntry).where(AuditEntry.id == row["id"]).values(
                prev_hash=row["prev_hash"], hash=row["hash"]))
    _, problem = await _verify(core)
    assert problem is not None and problem.seq == 1 and "edited" in problem.reason


async def test_rechaining_after_a_deletion_is_caught(core: Core) -> None:
    await _fill(core)
    async with core.store.session() as s:
        await s.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    for row in _sha256_rechain(await _rows(core)):
        async with core.store.session() as s:
            await s.execute(update(AuditEntry).where(AuditEntry.id == row["id"]).values(
                seq=row["seq"], prev_hash=row["prev_hash"], hash=row["hash"]))
    _, problem = await _verify(core)
    assert problem is not None


async def test_a_forged_append_is_caught(core: Core) -> None:
    await _fill(core, 3)
    rows = await _rows(core)
    last = rows[-1]
    forged = AuditEntry(seq=4, at=last.at, actor="cli:mallory", action="test.step", practice_id=None,
                        appointment_id=None, before=None, after=None, details=None, prev_hash=last.hash)
    forged.hash = _sha256_hash(forged)
    async with core.store.session() as s:
        s.add(forged)
    _, problem = await _verify(core)
    assert problem is not None and problem.seq == 4


async def test_a_forged_head_checkpoint_is_caught(core: Core) -> None:
    from sync.store.model import AuditHead

    await _fill(core)
    rows = await _rows(core)
    async with core.store.session() as s:
        await s.execute(delete(AuditEntry).where(AuditEntry.seq >= 4))
        await s.execute(update(AuditHead).values(seq=3, hash=rows[2].hash))
    _, problem = await _verify(core)
    assert problem is not None and "signature" in problem.reason


async def test_an_exported_checkpoint_catches_a_replayed_head(core: Core) -> None:
    """With database access one can put back an older signed head; the exported checkpoint still disagrees."""
    from sync.store.model import AuditHead

    await _fill(core, 3)
    async with core.store.session() as s:
        old_head = (await s.scalars(select(AuditHead))).one()
        saved = {"seq": old_head.seq, "hash": old_head.hash, "mac": old_head.mac}
    await _fill(core, 2)
    async with core.store.session() as s:
        mark = await audit.checkpoint(s)
        await s.execute(delete(AuditEntry).where(AuditEntry.seq >= 4))
        await s.execute(update(AuditHead).values(**saved))
    assert await _verify(core) == (3, None)  # the database alone cannot tell
    async with core.store.session() as s:
        problem = await audit.verify_checkpoints(s, [mark.line()])
    assert problem is not None and "seq 5" in str(problem)
    bad = mark.line().replace(mark.hash, "0" * 64)
    async with core.store.session() as s:
        forged = await audit.verify_checkpoints(s, [bad])
    assert forged is not None and "signature" in str(forged)


async def test_an_intact_chain_matches_its_exported_checkpoint(core: Core) -> None:
    await _fill(core, 3)
    async with core.store.session() as s:
        mark = await audit.checkpoint(s)
    await _fill(core, 2)
    async with core.store.session() as s:
        assert await audit.verify_checkpoints(s, [mark.line(), ""]) is None
    assert await _verify(core) == (5, None)


async def test_the_scheduled_checkpoint_goes_to_the_log_and_the_file(
    core: Core, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from sync.jobs.audit_checkpoints import checkpoint_job

    await _fill(core, 2)
    target = tmp_path / "checkpoints.jsonl"
    core.settings = core.settings.model_copy(update={"audit_checkpoint_file": target})
    with caplog.at_level(logging.INFO, logger="clinicbot.audit"):
        await checkpoint_job(core)
        await checkpoint_job(core)
    lines = target.read_text().splitlines()
    assert len(lines) == 2 and all('"seq": 2' in ln for ln in lines)
    assert [r.getMessage() for r in caplog.records].count("audit checkpoint") == 2
    async with core.store.session() as s:
        assert await audit.verify_checkpoints(s, lines) is None


async def test_a_chain_written_before_the_keyed_chain_still_verifies_and_stays_anchored(settings: Settings) -> None:
    """Rows written by an older clinicbot (plain SHA-256) verify after the upgrade; new rows are keyed
    and anchor them, so an edit of an old row is still caught."""
    from datetime import UTC, datetime

    from sync.boot import open_core
    from sync.store.migrate import upgrade

    core = open_core(settings)
    try:
        await upgrade(core.store, "0003_conflict_notices")
        prev = audit.GENESIS
        async with core.store.session() as s:
            for seq in (1, 2, 3):
                row = AuditEntry(seq=seq, at=datetime(2026, 1, seq, tzinfo=UTC), actor="cli:old", action="test.old",
                                 practice_id=None, appointment_id=seq, before=None, after=None, details=None,
                                 prev_hash=prev)
                row.hash = prev = audit._row_hash(row, keyed=False)
                s.add(row)
        await upgrade(core.store)
        assert await _verify(core) == (3, None)
        await _fill(core, 2)
        assert await _verify(core) == (5, None)
        async with core.store.session() as s:
            await s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(actor="cli:mallory"))
        for row in _sha256_rechain((await _rows(core))[:3]):  # re-chain the old part with the old hash
            async with core.store.session() as s:
                await s.execute(update(AuditEntry).where(AuditEntry.id == row["id"]).values(
                    prev_hash=row["prev_hash"], hash=row["hash"]))
        _, problem = await _verify(core)
        assert problem is not None and problem.seq == 4 and "link" in problem.reason
    finally:
        await core.close()
