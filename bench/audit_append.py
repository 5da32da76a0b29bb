"""Audit log appends and verification: the keyed chain with its signed head, against the plain chain.

    python -m bench.audit_append [--entries 2000] [--per-transaction 1,20]

On a fresh SQLite file, `record` appends `--entries` entries, committing every N entries for each
N in `--per-transaction` (1: a chat action; 20: a sync page). `keyed` is clinicbot as it is (an
HMAC per row, and the signed head moved in the same transaction); `plain` is the baseline the
keyed chain replaced, measured in the same run: unkeyed SHA-256 and no head (the head update is
switched off). Then `verify` walks the whole chain. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any


async def _run(mode: str, entries: int, per_tx: int, tmp: Path) -> dict[str, float]:
    from sync.boot import open_core
    from sync.runtime.settings import Settings
    from sync.store import audit
    from sync.store.crypto import new_key
    from sync.store.migrate import upgrade

    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp / f'{mode}-{per_tx}.sqlite3'}",  # type: ignore[call-arg]
                        secret_key=new_key(), secret_key_file=tmp / "key")
    core = open_core(settings)
    await upgrade(core.store)
    keyed_hash, write_head = audit._row_hash, audit._write_head
    if mode == "plain":
        def plain_hash(entry: Any, keyed: bool = True) -> str:
            return keyed_hash(entry, keyed=False)

        def no_head(sync_session: Any) -> None:
            return None

        audit._row_hash, audit._write_head = plain_hash, no_head  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        for first in range(0, entries, per_tx):
            async with core.store.session() as session:
                for i in range(first, min(entries, first + per_tx)):
                    await audit.record(session, actor="cli:bench", action="appointment.rescheduled",
                                       appointment_id=i, before={"start": "2026-03-03T10:00:00+00:00"},
                                       after={"start": "2026-03-03T11:00:00+00:00", "client_name": "A B"})
        appended = time.perf_counter() - started
        started = time.perf_counter()
        async with core.store.session() as session:
            count, problem = await audit.verify(session)
        verified = time.perf_counter() - started
        assert count == entries and (problem is None or mode == "plain"), problem
    finally:
        audit._row_hash, audit._write_head = keyed_hash, write_head  # type: ignore[assignment]
        await core.close()
    return {"append_per_entry_ms": round(appended / entries * 1000, 3),
            "verify_per_entry_us": round(verified / entries * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--per-transaction", default="1,20")
    args = parser.parse_args()
    results: dict[str, Any] = {"entries": args.entries, "backend": "sqlite"}
    with tempfile.TemporaryDirectory() as tmp:
        for per_tx in (int(n) for n in args.per_transaction.split(",")):
            for mode in ("plain", "keyed"):
                results[f"{mode}_per_tx_{per_tx}"] = asyncio.run(_run(mode, args.entries, per_tx, Path(tmp)))
    results["note"] = "plain = unkeyed SHA-256 and no signed head (the chain before issue 21); same run"
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
