"""Failover: three `clinicbot serve` processes on one PostgreSQL schema, 200 reminders due within
a minute, the scheduler's leader killed half-way: every reminder arrives exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from sync.boot import open_core
from sync.notify.reminders import plan_upcoming
from sync.runtime.settings import Settings
from sync.services.practices import add_practitioner, create_practice
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Practitioner, ReminderLedger
from tests.conftest import TEST_KEY
from tests.fakes.recorder import Recorder

REPO = Path(__file__).resolve().parents[2]
LEADER_LINE = "this process now runs the scheduler"
REMINDERS = 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _prepare(settings: Settings) -> None:
    core = open_core(settings)
    try:
        await upgrade(core.store)
        async with core.store.session() as s:
            practice = await create_practice(s, "Failover Clinic", "UTC", "test")
            person = await add_practitioner(s, practice, "Dr Lee", email=None, tz="UTC", actor="test")
            person.reminder_prefs = {
                "offsets_minutes": [5],
                "quiet_start": None,
                "followups": False,
                "agenda_time": None,
            }
    finally:
        await core.close()


async def _book(settings: Settings, first_due: datetime, spread: timedelta) -> None:
    """200 appointments whose 5-minute reminders fall evenly inside `spread` from `first_due`."""
    core = open_core(settings)
    try:
        async with core.store.session() as s:
            person = await s.scalar(select(Practitioner))
            assert person is not None
            for i in range(REMINDERS):
                start = first_due + spread * i / REMINDERS + timedelta(minutes=5)
                s.add(
                    Appointment(
                        practice_id=person.practice_id,
                        practitioner_id=person.id,
                        start=start,
                        end=start + timedelta(minutes=20),
                        status="confirmed",
                        version=1,
                    )
                )
            await s.flush()
            await plan_upcoming(s, datetime.now(UTC))
    finally:
        await core.close()


async def _healthy(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


async def _ledger(settings: Settings) -> dict[str, int]:
    core = open_core(settings)
    try:
        async with core.store.session() as s:
            rows = await s.execute(
                select(ReminderLedger.status, func.count()).group_by(ReminderLedger.status)
            )
            return dict(rows.tuples().all())
    finally:
        await core.close()


def _log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.mark.postgres
async def test_three_servers_leader_killed_every_reminder_exactly_once(
    backend: str, settings: Settings, tmp_path: Path
) -> None:
    if backend != "postgres":
        pytest.skip("several servers need PostgreSQL; on SQLite the server is single-process")
    recorder = Recorder()
    url = await recorder.start()
    await _prepare(settings)
    env = {
        **os.environ,
        "CLINICBOT_DATABASE_URL": settings.database_url,
        "CLINICBOT_DATABASE_SCHEMA": settings.database_schema,
        "CLINICBOT_SECRET_KEY": TEST_KEY,
        "CLINICBOT_SECRET_KEY_FILE": str(tmp_path / "unused.key"),
        "CLINICBOT_TEST_RECORDER_URL": url,
        "CLINICBOT_AUTO_MIGRATE": "false",
        "PYTHONPATH": str(REPO),
    }
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        ports = [_free_port() for _ in range(3)]
        for n, port in enumerate(ports):
            log_path = tmp_path / f"serve-{n}.log"
            with log_path.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tests.fakes.serve_with_recorder", "--port", str(port)],
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            procs.append((proc, log_path))
        # Start-up time depends on the machine's load; the clock starts once all three serve.
        up_by = time.time() + 120
        while not all([await _healthy(p) for p in ports]):
            assert time.time() < up_by and all(p.poll() is None for p, _ in procs), [
                _log(p) for _, p in procs
            ]
            await asyncio.sleep(0.2)
        first_due = datetime.now(UTC) + timedelta(seconds=3)
        await _book(settings, first_due, timedelta(seconds=30))
        # Half the reminders delivered, then kill whichever process leads.
        while len(recorder.deliveries) < REMINDERS // 2:
            assert time.time() < first_due.timestamp() + 40, [_log(p)[-2000:] for _, p in procs]
            await asyncio.sleep(0.05)
        leaders = [(proc, path) for proc, path in procs if LEADER_LINE in _log(path)]
        assert len(leaders) == 1, "exactly one process runs the scheduler"
        leader, _ = leaders[0]
        leader.send_signal(signal.SIGKILL)
        killed_at, before_kill = time.time(), len(recorder.deliveries)
        leader.wait(timeout=10)
        deadline = first_due.timestamp() + 30 + 30
        while len(recorder.deliveries) < REMINDERS and time.time() < deadline:
            await asyncio.sleep(0.1)
        keys = recorder.keys()
        assert len(keys) == REMINDERS, f"{len(keys)} delivered of {REMINDERS}"
        assert len(set(keys)) == REMINDERS, "a reminder was delivered twice"
        after = [d["received_at"] for d in recorder.deliveries[before_kill:]]
        assert after and after[0] - killed_at < 10, "another process took over within 10 s"
        survivors = [path for proc, path in procs if proc is not leader and LEADER_LINE in _log(path)]
        assert len(survivors) == 1
        # The fake receives a reminder before its sender records it as sent (a commit after the
        # answer): the last few rows are "sending" for a moment, on a loaded machine for longer.
        settle_by = time.time() + 20
        while (ledger := await _ledger(settings)) != {"sent": REMINDERS} and time.time() < settle_by:
            await asyncio.sleep(0.2)
        assert ledger == {"sent": REMINDERS}
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        await recorder.stop()
