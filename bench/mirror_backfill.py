"""Benchmark: backfilling a mirror added after N appointments exist (SQLite, in-memory calendars).

    python -m bench.mirror_backfill [--sizes 1000,5000]

For each size: N bookings are imported from a source calendar; then a calendar is made a mirror
(`set_calendar --role mirror`) and measured, in this order:

- `queue_seconds`: the mirror's sync that queues the copies (chunks of 200 appointments, each its
  own transaction with its links and outbox ops);
- `write_seconds`: the outbox writing every copy to the in-memory calendar (the write side's cost
  without a network: a floor, not what a real server takes);
- `finish_seconds`: the next sync, which sees every copy written and marks the backfill done;
- `again_seconds`: sync turned off and on with nothing missed: every copy is checked, none queued.

The baseline measured in the same run is `import_seconds`, the first sync of the same N bookings
from the source (no mirror), the work a backfill is meant to stay below. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any


async def _one(size: int, root: Path) -> dict[str, Any]:
    from sqlalchemy import func, select

    from sync.boot import open_core
    from sync.engine.outbox import OutboxConfig, run_until_idle
    from sync.engine.run import sync_connection
    from sync.engine.subscriber import register
    from sync.services.connections import set_calendar, set_sync
    from sync.store.migrate import upgrade
    from sync.store.model import OutboxOp
    from tests.conftest import make_settings
    from tests.sync.helpers import NOW, booking, make_clinic

    settings = make_settings("sqlite", root)
    core = open_core(settings)
    await upgrade(core.store)
    register(core)
    try:
        clinic = await make_clinic(core, mirrors=0)
        for i in range(size):
            clinic.servers["source"].put(booking(f"b{i}", NOW + timedelta(days=1 + i % 170, minutes=45 * (i % 11))))
        t0 = time.perf_counter()
        imported = await sync_connection(core, clinic.connections["source"])
        import_seconds = time.perf_counter() - t0
        cal = await clinic.add_calendar("late", "busy")
        await set_calendar(core, cal, role="mirror", actor="bench")

        async def sleep(seconds: float) -> None:
            clinic.now += timedelta(seconds=seconds)

        t0 = time.perf_counter()
        queued = await sync_connection(core, clinic.connections["late"])
        queue_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        await run_until_idle(core, sleep=sleep, config=OutboxConfig(batch=500))
        write_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        await sync_connection(core, clinic.connections["late"])
        finish_seconds = time.perf_counter() - t0
        await set_sync(core, clinic.practice_id, enabled=False, calendar_ids=[cal], actor="bench")
        await set_sync(core, clinic.practice_id, enabled=True, calendar_ids=[cal], actor="bench")
        async with core.store.session() as s:
            ops_before = await s.scalar(select(func.count()).select_from(OutboxOp))
        t0 = time.perf_counter()
        again = await sync_connection(core, clinic.connections["late"])
        again_seconds = time.perf_counter() - t0
        async with core.store.session() as s:
            ops_after = await s.scalar(select(func.count()).select_from(OutboxOp))
        assert imported.created == size and queued.backfilled == size, (imported, queued)
        assert len(clinic.servers["late"].items) == size and again.backfilled == 0 and ops_after == ops_before
        return {
            "appointments": size, "import_seconds": round(import_seconds, 3), "queue_seconds": round(queue_seconds, 3),
            "write_seconds": round(write_seconds, 3), "finish_seconds": round(finish_seconds, 3),
            "again_seconds": round(again_seconds, 3), "copies": len(clinic.servers["late"].items),
            "queue_vs_import": round(queue_seconds / import_seconds, 2),
        }
    finally:
        await core.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000")
    args = parser.parse_args()
    results = []
    for size in (int(x) for x in args.sizes.split(",")):
        root = Path(tempfile.mkdtemp(prefix="cb-bench-backfill-"))
        try:
            results.append(asyncio.run(_one(size, root)))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"benchmark": "mirror_backfill", "store": "sqlite", "calendars": "in-memory (best case for "
                      "the write side)", "results": results}, indent=2))


if __name__ == "__main__":
    main()
