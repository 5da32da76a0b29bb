"""Reminder scheduler benchmark: clinicbot's ledger + one dispatcher job, against stock APScheduler.

    python -m bench.reminders [--scheduled 100000] [--due 1000] [--window 60] [--url URL]

Two designs on the same database kind (SQLite file by default, or --url postgresql+asyncpg://...):
- `ledger`: clinicbot's design. Reminders are ReminderLedger rows; APScheduler runs one dispatcher
  job that wakes at the earliest due row (sync.jobs.scheduler.ClinicScheduler).
- `stock` (the baseline): one APScheduler date job per reminder in its SQLAlchemyJobStore; each
  job carries ids, re-reads its appointment and sends (it writes no ledger, so it does less).

Figures, each measured in a fresh subprocess:
- startup_s / rss_mb: with `--scheduled` reminders stored, time from starting the scheduler until
  it has looked at what is due and armed its next wake-up, and the resident memory it added.
- lateness p50/p99: `--due` reminders due evenly within `--window` seconds; lateness is the time
  between each reminder's due time and the notifier being called. Target p99 <= 1 s.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
OFFSET = timedelta(minutes=5)
#: Filled by the stock job in its process; read by the lateness probe.
_LATENESS: list[float] = []
_CORE: Any = None


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _settings(url: str, schema: str, tmp: Path) -> Any:
    from sync.runtime.settings import Settings
    from sync.store.crypto import new_key

    return Settings(
        _env_file=None,
        database_url=url,
        database_schema=schema,  # type: ignore[call-arg]
        secret_key=new_key(),
        secret_key_file=tmp / "bench.key",
    )


class _Notifier:
    def __init__(self) -> None:
        self.lateness: list[float] = []

    async def notify(self, notification: Any) -> None:
        fire_at = datetime.fromisoformat(notification.data["fire_at"])
        self.lateness.append((datetime.now(UTC) - fire_at).total_seconds())


async def _seed(core: Any, due: list[datetime], design: str) -> None:
    """Appointments whose 5-minute reminders fall at `due`; ledger rows or stock jobs for them."""
    from sync.store.migrate import upgrade
    from sync.store.model import Appointment, Practice, Practitioner, ReminderLedger

    await upgrade(core.store)
    async with core.store.session() as s:
        practice = Practice(name="Bench", timezone="UTC", settings={})
        s.add(practice)
        await s.flush()
        person = Practitioner(
            practice_id=practice.id,
            name="Dr Bench",
            timezone="UTC",
            handle="bench",
            reminder_prefs={
                "offsets_minutes": [5],
                "quiet_start": None,
                "followups": False,
                "agenda_time": None,
            },
        )
        s.add(person)
        await s.flush()
        pid, prid = practice.id, person.id
    for chunk in range(0, len(due), 5000):
        part = due[chunk : chunk + 5000]
        async with core.store.session() as s:
            rows = [
                {
                    "practice_id": pid,
                    "practitioner_id": prid,
                    "start": t + OFFSET,
                    "end": t + OFFSET + timedelta(minutes=20),
                    "status": "confirmed",
                    "version": 1,
                    "recurrence_key": "",
                    "exdates": [],
                    "all_day": False,
                    "transparent": False,
                    "created_at": datetime.now(UTC),
                    "updated_at": datetime.now(UTC),
                }
                for t in part
            ]
            await s.execute(insert(Appointment), rows)
    async with core.store.session() as s:
        ids = list((await s.scalars(select(Appointment.id).order_by(Appointment.id))).all())
    if design == "ledger":
        for chunk in range(0, len(ids), 5000):
            async with core.store.session() as s:
                await s.execute(
                    insert(ReminderLedger),
                    [
                        {
                            "appointment_id": i,
                            "kind": "reminder:5",
                            "fire_at": t,
                            "next_attempt_at": t,
                            "status": "planned",
                            "attempts": 0,
                            "late": False,
                            "practitioner_id": prid,
                        }
                        for i, t in zip(ids[chunk : chunk + 5000], due[chunk : chunk + 5000], strict=True)
                    ],
                )
    else:
        await _seed_stock_jobs(core, ids, due)


def sync_database_url(url: str) -> str:
    """The stock job store's synchronous URL: psycopg for PostgreSQL; for SQLite a sibling file
    (a synchronous write to the file the async engine writes, from the event loop, can wait on a
    lock held by a transaction that cannot finish until the loop runs again)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db and db != ":memory:":
            path = Path(db)
            db = str(path.with_name(f"{path.stem}.jobs{path.suffix or '.sqlite3'}"))
        return parsed.set(drivername="sqlite", database=db).render_as_string(hide_password=False)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


async def _seed_stock_jobs(core: Any, ids: list[int], due: list[datetime]) -> None:
    """Stock jobs written in bulk in the job store's own format (add_job would take minutes)."""
    from apscheduler.job import Job
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.date import DateTrigger
    from sqlalchemy import create_engine

    engine = create_engine(sync_database_url(core.store.url))
    store = SQLAlchemyJobStore(engine=engine, tableschema=core.store.schema or None)
    sched = AsyncIOScheduler(timezone=UTC)
    store.start(sched, "default")
    rows = []
    for appt_id, t in zip(ids, due, strict=True):
        job = Job(
            sched,
            id=f"reminder-{appt_id}",
            func=_stock_job,
            args=(appt_id, t.isoformat()),
            kwargs={},
            trigger=DateTrigger(t, timezone=UTC),
            executor="default",
            misfire_grace_time=900,
            coalesce=True,
            max_instances=1,
            next_run_time=t,
            name="reminder",
        )
        rows.append(
            {
                "id": job.id,
                "next_run_time": t.timestamp(),
                "job_state": pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL),
            }
        )
    with engine.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            conn.execute(store.jobs_t.insert(), rows[chunk : chunk + 5000])
    engine.dispose()


async def _stock_job(appointment_id: int, fire_at: str) -> None:
    """The baseline's job: carries ids, re-reads the appointment, sends."""
    from sync.store.model import Appointment

    async with _CORE.store.session() as s:
        appt = await s.get(Appointment, appointment_id)
    if appt is not None and appt.status == "confirmed":
        _LATENESS.append((datetime.now(UTC) - datetime.fromisoformat(fire_at)).total_seconds())


async def _start(core: Any, design: str) -> tuple[Any, float]:
    """Start a scheduler of `design`; return it and the seconds until its first wake-up is armed."""
    if design == "ledger":
        from sync.jobs.scheduler import ClinicScheduler

        sched = ClinicScheduler(core)
        t0 = time.perf_counter()
        await sched.start()
        await sched.dispatch()  # what the immediately-armed first run does: look at due rows, re-arm
        return sched, time.perf_counter() - t0
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from sqlalchemy import create_engine

    engine = create_engine(sync_database_url(core.store.url))
    aps = AsyncIOScheduler(
        timezone=UTC,
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tableschema=core.store.schema or None)},
    )
    t0 = time.perf_counter()
    aps.start()
    await asyncio.sleep(0)  # the first wakeup (due jobs, next run time) runs on this loop turn
    await asyncio.sleep(0)
    return aps, time.perf_counter() - t0


async def _stop(sched: Any, design: str) -> None:
    if design == "ledger":
        await sched.stop()
    else:
        sched.shutdown(wait=False)
        await asyncio.sleep(0)


async def _case(case: str, design: str, url: str, count: int, window: float) -> dict[str, Any]:
    global _CORE
    from sync.boot import open_core

    with tempfile.TemporaryDirectory() as tmp:
        base = url or f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
        schema = f"bench_{uuid.uuid4().hex[:10]}" if base.startswith("postgresql") else ""
        core = _CORE = open_core(_settings(base, schema, Path(tmp)))
        notifier = _Notifier()
        core.services.notifier = notifier
        try:
            now = datetime.now(UTC)
            if case == "startup":
                due = [now + timedelta(days=1) + timedelta(days=59) * i / count for i in range(count)]
            else:
                due = [
                    now + timedelta(seconds=15) + timedelta(seconds=window) * i / count for i in range(count)
                ]
            await _seed(core, due, design)
            rss0 = _rss_mb()
            sched, startup = await _start(core, design)
            result: dict[str, Any] = {"design": design, "case": case, "reminders": count}
            if case == "startup":
                result.update(startup_s=round(startup, 3), rss_mb=round(_rss_mb() - rss0, 1))
            else:
                seen = notifier.lateness if design == "ledger" else _LATENESS
                deadline = time.time() + (due[-1] - datetime.now(UTC)).total_seconds() + 60
                while len(seen) < count and time.time() < deadline:
                    await asyncio.sleep(0.2)
                lat = sorted(seen)
                result.update(
                    delivered=len(lat),
                    window_s=window,
                    p50_s=round(statistics.median(lat), 3) if lat else None,
                    p99_s=round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3) if lat else None,
                    max_s=round(lat[-1], 3) if lat else None,
                )
            await _stop(sched, design)
            return result
        finally:
            if schema:
                from sqlalchemy import text

                async with core.store.engine.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            await core.close()


def _run_sub(case: str, design: str, args: argparse.Namespace) -> dict[str, Any]:
    count = args.scheduled if case == "startup" else args.due
    cmd = [
        sys.executable,
        "-m",
        "bench.reminders",
        "--one",
        case,
        design,
        "--window",
        str(args.window),
        "--scheduled",
        str(count),
        "--due",
        str(count),
    ] + (["--url", args.url] if args.url else [])
    out = subprocess.run(
        cmd,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if out.returncode != 0:
        return {"design": design, "case": case, "error": out.stderr.strip().splitlines()[-1:]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduled", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--url", default="", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--one", nargs=2, metavar=("CASE", "DESIGN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        case, design = args.one
        count = args.scheduled if case == "startup" else args.due
        print(json.dumps(asyncio.run(_case(case, design, args.url, count, args.window))))
        return
    results = {
        f"{case}/{design}": _run_sub(case, design, args)
        for case in ("startup", "lateness")
        for design in ("ledger", "stock")
    }
    ledger, stock = results["lateness/ledger"], results["lateness/stock"]
    summary = {
        "benchmark": "reminders",
        "database": "postgresql" if args.url.startswith("postgresql") else "sqlite",
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "baseline": "stock APScheduler 3.11: one date job per reminder in SQLAlchemyJobStore",
        "results": results,
        "target_p99_s": 1.0,
        "ledger_meets_target": (ledger.get("p99_s") or 99) <= 1.0 and ledger.get("delivered") == args.due,
        "p99_ratio_stock_over_ledger": (
            round(stock["p99_s"] / ledger["p99_s"], 2) if stock.get("p99_s") and ledger.get("p99_s") else None
        ),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
