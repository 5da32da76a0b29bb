"""What the one-minute reminder sweep costs with recurring series, against plain appointments.

    python -m bench.series_sweep [--count 500] [--url URL]

The scheduler runs `plan_upcoming` every minute. A plain appointment is looked at only while it has
no open ledger row, so a sweep after the first costs almost nothing. A recurring series kept as one
row (CalDAV, iCloud, ICS) is looked at on every sweep, because its visits keep coming into the
49-hour horizon: it is expanded and its ledger rows are read each time.

Two databases, each fresh (a SQLite file by default, or --url postgresql+asyncpg://...):
- `series`: `--count` weekly series, begun 20 weeks ago, over 10 practitioners;
- `single` (the baseline): `--count` plain appointments within the next 49 hours.

Figures: the first sweep (which plans the rows), then the median of 5 steady sweeps, in ms, and
the rows planned. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.reminders import _settings


async def _case(design: str, url: str, count: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from sync.boot import open_core
    from sync.notify.reminders import plan_upcoming
    from sync.services.practices import add_practitioner, create_practice
    from sync.store.migrate import upgrade
    from sync.store.model import Appointment, ReminderLedger

    with tempfile.TemporaryDirectory() as tmp:
        base = url or f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
        schema = f"bench_{uuid.uuid4().hex[:10]}" if base.startswith("postgresql") else ""
        core = open_core(_settings(base, schema, Path(tmp)))
        try:
            await upgrade(core.store)
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            async with core.store.session() as s:
                practice = await create_practice(s, "Bench", "Europe/Berlin", "bench")
                people = [
                    await add_practitioner(s, practice, f"Dr {i}", email=None, tz="Europe/Berlin", actor="bench")
                    for i in range(10)
                ]
                await s.flush()
                for i in range(count):
                    if design == "series":  # weekly, begun 20 weeks ago, at spread-out times
                        start = now - timedelta(weeks=20) + timedelta(minutes=37 * i)
                        extra: dict[str, Any] = {"rrule": "FREQ=WEEKLY", "source_uid": f"series-{i}"}
                    else:  # one visit within the next 49 hours
                        start = now + timedelta(hours=2) + timedelta(minutes=(47 * 60 * i) // count)
                        extra = {}
                    s.add(
                        Appointment(
                            practice_id=practice.id, practitioner_id=people[i % 10].id, start=start,
                            end=start + timedelta(minutes=50), tzid="Europe/Berlin", status="confirmed",
                            version=1, exdates=[], recurrence_key="", client_name=f"Client {i}", **extra,
                        )
                    )  # fmt: skip

            async def sweep() -> float:
                t0 = time.perf_counter()
                async with core.store.session() as s:
                    await plan_upcoming(s, now)
                return (time.perf_counter() - t0) * 1000

            first = await sweep()
            steady = [await sweep() for _ in range(5)]
            async with core.store.session() as s:
                rows = await s.scalar(select(func.count()).select_from(ReminderLedger).where(
                    ReminderLedger.appointment_id != 0))  # fmt: skip
            return {
                "design": design,
                "appointments": count,
                "first_sweep_ms": round(first, 1),
                "steady_sweep_ms": round(statistics.median(steady), 1),
                "rows_planned": rows,
            }
        finally:
            await core.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--url", default="", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    series = asyncio.run(_case("series", args.url, args.count))
    single = asyncio.run(_case("single", args.url, args.count))
    print(
        json.dumps(
            {
                "benchmark": "series_sweep",
                "baseline": "single: the same number of plain appointments",
                "series": series,
                "single": single,
                "steady_sweep_ms_per_series": round(series["steady_sweep_ms"] / args.count, 3),
                "steady_ratio_series_over_single": round(
                    series["steady_sweep_ms"] / max(single["steady_sweep_ms"], 0.001), 1
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
