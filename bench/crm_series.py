"""Benchmark: the CRM log's series sweep (recurring visits logged occurrence by occurrence).

`--series` weekly series (each for one client, some with EXDATEs) in one practice with a HubSpot and
a Salesforce connection. Measured without any CRM in the loop (the sweep only queues rows; the writes
are bench.crm_log's): the first sweep, which queues every visit in the four-week window for both
CRMs, and a steady sweep (the leader's job every minute when nothing came into the window), which
must queue nothing. Then the clock moves on a week and the sweep queues the visits that came in.
Printed JSON: rows queued (expected: visits in the window x 2 CRMs), milliseconds per sweep and per
series, and a second identical sweep's count (target 0).

    python -m bench.crm_series [--series 500] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from sync.boot import open_core
from sync.notify import crm
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Connection, CrmEntry, Practice, Practitioner
from tests.conftest import make_settings

NOW = datetime(2031, 5, 5, 8, 0, tzinfo=UTC)


async def _run(series: int, database_url: str | None, tmp: Path) -> dict[str, Any]:
    settings = make_settings("sqlite", tmp)
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    core = open_core(settings)
    core.clock = lambda: NOW
    try:
        await upgrade(core.store)
        async with core.store.session() as s:
            practice = Practice(name="Bench Clinic", timezone="Europe/London")
            s.add(practice)
            await s.flush()
            lee = Practitioner(practice_id=practice.id, name="Dr Lee", handle="dr-lee", timezone="Europe/London")
            s.add(lee)
            s.add_all([Connection(practice_id=practice.id, provider="hubspot", account="hub", config={},
                                  credentials={"password": "x"}),
                       Connection(practice_id=practice.id, provider="salesforce", account="org", config={},
                                  credentials={"access_token": "x"})])
            await s.flush()
            for n in range(series):
                start = NOW - timedelta(days=n % 60) + timedelta(hours=1 + n % 9)
                exdates = [(start + timedelta(weeks=3)).isoformat()] if n % 5 == 0 else []
                s.add(Appointment(practice_id=practice.id, practitioner_id=lee.id, start=start,
                                  end=start + timedelta(minutes=45), tzid="Europe/London", status="confirmed",
                                  version=1, exdates=exdates, client_name=f"Client {n}",
                                  client_email=f"client{n}@example.org", rrule="FREQ=WEEKLY;COUNT=20"))
        began = time.perf_counter()
        first = await crm.queue_series(core)
        first_ms = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        steady = await crm.queue_series(core)
        steady_ms = (time.perf_counter() - began) * 1000
        week = NOW + timedelta(days=7)
        core.clock = lambda: week
        began = time.perf_counter()
        moved_on = await crm.queue_series(core)
        moved_ms = (time.perf_counter() - began) * 1000
        async with core.store.session() as s:
            rows = int(await s.scalar(select(func.count()).select_from(CrmEntry)) or 0)
            keys = int(await s.scalar(select(func.count(func.distinct(CrmEntry.visit_key)))) or 0)
        return {
            "series": series, "database": "postgresql" if database_url else "sqlite",
            "first_sweep": {"queued": first, "ms": round(first_ms, 1), "ms_per_series": round(first_ms / series, 3)},
            "steady_sweep": {"queued": steady, "ms": round(steady_ms, 1),
                             "ms_per_series": round(steady_ms / series, 3)},
            "a_week_later": {"queued": moved_on, "ms": round(moved_ms, 1)},
            "rows": rows, "distinct_visits": keys, "rows_per_visit": round(rows / keys, 2) if keys else 0,
        }
    finally:
        await core.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(_run(args.series, args.database_url, Path(tmp))), indent=2))


if __name__ == "__main__":
    main()
