"""The audit chain: verify finds edited, deleted and reordered rows."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from sync.store import audit
from sync.runtime.core import Core
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
