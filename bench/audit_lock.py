"""The audit chain's append lock under concurrent writers: held until commit only, against held
for the whole transaction (before issue 23's follow-up), in the same run.

    python -m bench.audit_lock [--writers 16] [--transactions 40] [--database-url postgresql://...]

N writers each run `--transactions` audited changes, each in its own transaction, as a chat action
does: read the row, `audit.record` the change, then the rest of the handler's work (an UPDATE of
the writer's own row and two more reads), commit. `eager` takes the append lock, reads the tail and
inserts at `record` (what `record` did before); `at_commit` is clinicbot as it is (the entries are
chained and inserted just before the commit). Reports transactions/s, p50/p99 transaction time,
and the mean time from taking the lock to the COMMIT being sent. The chain is verified afterwards.
Without --database-url: SQLite (a temporary file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


async def _run(mode: str, url: str, schema: str, writers: int, per_writer: int, tmp: Path) -> dict[str, Any]:
    from sqlalchemy import select, text, update

    from sync.boot import open_core
    from sync.runtime.settings import Settings
    from sync.store import audit
    from sync.store.crypto import new_key
    from sync.store.migrate import upgrade
    from sync.store.model import Practice

    if schema:
        await _pg_schema(url, schema, create=True)
    settings = Settings(_env_file=None, database_url=url, database_schema=schema,  # type: ignore[call-arg]
                        secret_key=new_key(), secret_key_file=tmp / f"key-{mode}")
    core = open_core(settings)
    try:
        await upgrade(core.store)
        async with core.store.session() as s:
            for w in range(writers):
                s.add(Practice(name=f"bench {w}", timezone="UTC"))
        async with core.store.session() as s:
            ids = list((await s.scalars(select(Practice.id).where(Practice.name.like("bench %")))).all())
        audit.LOCK_STATS.appends, audit.LOCK_STATS.until_commit = 0, 0.0
        times: list[float] = []

        async def writer(practice_id: int) -> None:
            for i in range(per_writer):
                began = time.perf_counter()
                async with core.store.session() as s:
                    row = await s.get(Practice, practice_id)
                    assert row is not None
                    await audit.record(s, actor="cli:bench", action="practice.renamed", practice_id=practice_id,
                                       before={"name": row.name}, after={"name": f"{row.name}."})
                    if mode == "eager":
                        await s.run_sync(audit._append_pending)
                    await s.execute(update(Practice).where(Practice.id == practice_id)
                                    .values(settings={"n": i}))
                    await s.execute(text("SELECT count(*) FROM practitioner"))
                    await s.execute(select(Practice.timezone).where(Practice.id == practice_id))
                times.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(writer(p) for p in ids))
        elapsed = time.perf_counter() - started
        async with core.store.session() as s:
            count, problem = await audit.verify(s)
        assert problem is None and count >= writers * per_writer, problem
        times.sort()
        stats = audit.LOCK_STATS
        return {
            "transactions_per_s": round(len(times) / elapsed, 1),
            "p50_ms": round(statistics.median(times) * 1000, 2),
            "p99_ms": round(times[int(len(times) * 0.99) - 1] * 1000, 2),
            "lock_held_mean_ms": round(stats.until_commit / max(stats.appends, 1) * 1000, 3),
            "chain_verified_rows": count,
        }
    finally:
        await core.close()
        if schema:
            await _pg_schema(url, schema, create=False)


async def _pg_schema(url: str, schema: str, create: bool) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            if create:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--transactions", type=int, default=40, help="per writer")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    url = args.database_url
    if url and "+" not in url.split("://")[0]:
        url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    results: dict[str, Any] = {"database": "postgresql" if url else "sqlite", "writers": args.writers,
                               "transactions_per_writer": args.transactions}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("eager", "at_commit"):
            db = url or f"sqlite+aiosqlite:///{Path(tmp) / f'{mode}.sqlite3'}"
            schema = f"bench_audit_lock_{os.getpid()}_{mode}" if url else ""
            results[mode] = asyncio.run(_run(mode, db, schema, args.writers, args.transactions, Path(tmp)))
    results["speedup"] = round(results["at_commit"]["transactions_per_s"] / results["eager"]["transactions_per_s"], 2)
    results["load_average"] = [round(x, 2) for x in os.getloadavg()]
    results["note"] = "eager = the lock taken at record() and held to the commit (before); same run"
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
