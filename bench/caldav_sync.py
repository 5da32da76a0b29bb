"""Benchmark: sync one Radicale calendar into clinicbot's database, against vdirsyncer on the same calendar.

    /work/venv/bin/python -m bench.caldav_sync [--sizes 1000,10000] [--skip-vdirsyncer]

For each size it seeds a fresh Radicale calendar and measures, for clinicbot (SQLite) and for
vdirsyncer (filesystem storage, installed with pip into bench/.work/vdirsyncer-venv), in this order:
initial sync, re-sync with no change, re-sync after 10 server-side edits. Each measurement runs in
its own subprocess; `seconds` is the sync call itself (imports and set-up excluded, on both sides),
`process_seconds` the whole process, and `peak_rss_mb` the child's peak RSS (os.wait4 rusage).
Prints one JSON object with the figures, the targets and whether each was met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
VENV = WORK / "vdirsyncer-venv"
VDIRSYNCER_VERSION = "0.21.0"
TARGETS = {"initial": 2.5, "nochange": 0.25, "edits": 0.4}
VDIR_MEASURED = {"initial": 9.5, "nochange": 2.0, "edits": 2.1}


# ---- children -----------------------------------------------------------------------------------

async def _clinicbot_child(db: Path, url: str, phase: str) -> dict[str, Any]:
    from sync.config import Settings
    from sync.core import open_core
    from sync.engine import sync_connection
    from sync.migrate import upgrade
    from sync.model import Calendar, Connection, Practice

    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{db}",  # type: ignore[call-arg]
                        secret_key_file=db.with_suffix(".key"), allow_private_urls=True)
    core = open_core(settings)
    try:
        if phase == "initial":
            await upgrade(core.store)
            async with core.store.session() as s:
                p = Practice(name="Bench", timezone="Europe/Berlin", settings={})
                s.add(p)
                await s.flush()
                c = Connection(practice_id=p.id, provider="caldav", account="bench", config={"url": url},
                               credentials={"username": "clinic", "password": "x"},
                               window_days_back=30, window_days_ahead=400)
                s.add(c)
                await s.flush()
                s.add(Calendar(connection_id=c.id, remote_id=url, name="bench", role="source"))
        async with core.store.session() as s:
            from sqlalchemy import select
            conn_id = (await s.scalars(select(Connection.id))).one()
        started = time.perf_counter()
        report = await sync_connection(core, conn_id)
        seconds = time.perf_counter() - started
        async with core.store.session() as s:
            error = (await s.get(Connection, conn_id)).last_error  # type: ignore[union-attr]
    finally:
        await core.close()
    if report.failed:
        raise RuntimeError(f"clinicbot sync failed: {error}")
    return {"seconds": seconds, "report": {k: v for k, v in report.as_dict().items() if v}}


def _vdirsyncer_child(config: Path, phase: str) -> dict[str, Any]:
    os.environ["VDIRSYNCER_CONFIG"] = str(config)
    from vdirsyncer.cli import app  # type: ignore[import-not-found]

    if phase == "initial":
        app.main(args=["discover"], standalone_mode=False)
    started = time.perf_counter()
    app.main(args=["sync"], standalone_mode=False)
    return {"seconds": time.perf_counter() - started}


# ---- the parent -----------------------------------------------------------------------------------

def _run_child(argv: list[str]) -> dict[str, Any]:
    """Run one measurement in a subprocess; its peak RSS comes from os.wait4's rusage for that child."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"{argv[:4]} failed: {errors.read().decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["process_seconds"] = round(wall, 3)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    result["seconds"] = round(result["seconds"], 3)
    return result


def _ensure_vdirsyncer() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"vdirsyncer=={VDIRSYNCER_VERSION}"],
                       check=True)
    return python


def _vdir_config(base: Path, url: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "storage").mkdir(exist_ok=True)
    config = base / "config"
    config.write_text(
        f'[general]\nstatus_path = "{base / "status"}"\n\n'
        '[pair bench]\na = "radicale"\nb = "local"\ncollections = null\n'
        'conflict_resolution = "a wins"\n\n'
        f'[storage radicale]\ntype = "caldav"\nurl = "{url}"\nusername = "clinic"\npassword = "x"\n\n'
        f'[storage local]\ntype = "filesystem"\npath = "{base / "storage"}"\nfileext = ".ics"\n'
    )
    return config


def _events(count: int) -> list[Any]:
    from sync.items import EventData

    base = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    out = []
    for n in range(count):
        start = base + timedelta(days=n % 300, minutes=30 * (n // 300 % 18))
        out.append(EventData(uid=f"bench-{n}-{uuid.uuid4().hex[:8]}", summary=f"Physio: Client {n}",
                             start=start, end=start + timedelta(minutes=30),
                             description="Follow-up, bring referral", location="Room 1"))
    return out


async def _warm(server: Any, name: str) -> None:
    """Have Radicale parse and cache every item once, before anything is measured (its first read of
    an item costs tens of milliseconds, the same for both sides)."""
    import httpx

    body = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
    async with httpx.AsyncClient(auth=server.credentials(), timeout=3600) as client:
        r = await client.request("PROPFIND", server.calendar_url("clinic", name), content=body,
                                 headers={"Depth": "1"})
    if r.status_code != 207:
        raise RuntimeError(f"PROPFIND: HTTP {r.status_code}")


async def _edit(server: Any, name: str, events: list[Any]) -> None:
    """Ten server-side edits, as a booking platform would make them (PUT with If-Match)."""
    import httpx

    from adapters.caldav.resources import resource_name
    from adapters.ical import serialize_calendar

    async with httpx.AsyncClient(auth=server.credentials(), timeout=60) as client:
        for ev in events[:10]:
            moved = ev.with_changes(start=ev.start + timedelta(hours=1), end=ev.end + timedelta(hours=1),
                                    summary=ev.summary + " (moved)")
            url = server.calendar_url("clinic", name) + resource_name(ev.uid)
            r = await client.put(url, content=serialize_calendar([moved]).encode(),
                                 headers={"Content-Type": "text/calendar; charset=utf-8"})
            if r.status_code not in (200, 201, 204):
                raise RuntimeError(f"edit PUT: HTTP {r.status_code}")


def bench(sizes: list[int], with_vdirsyncer: bool) -> dict[str, Any]:
    from tests.fakes.radicale import RadicaleServer

    WORK.mkdir(parents=True, exist_ok=True)
    vdir_python = _ensure_vdirsyncer() if with_vdirsyncer else None
    run_dir = WORK / f"run-{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {"sizes": {}, "targets_10k_seconds": TARGETS,
                               "vdirsyncer_version": VDIRSYNCER_VERSION if with_vdirsyncer else None,
                               "note": "seconds = the sync call; process_seconds = whole subprocess"}
    with RadicaleServer(run_dir / "radicale") as server:
        for size in sizes:
            name = f"cal{size}"
            asyncio.run(server.make_calendar("clinic", name))
            events = _events(size)
            server.seed_events("clinic", name, events)
            asyncio.run(_warm(server, name))
            url = server.calendar_url("clinic", name)
            db = run_dir / f"clinicbot-{size}.sqlite3"
            vconf = _vdir_config(run_dir / f"vdir-{size}", url) if vdir_python else None
            row: dict[str, Any] = {}
            for phase in ("initial", "nochange", "edits"):
                if phase == "edits":
                    asyncio.run(_edit(server, name, events))
                row[f"clinicbot_{phase}"] = _run_child(
                    [sys.executable, "-m", "bench.caldav_sync", "--child", "clinicbot", "--db", str(db),
                     "--url", url, "--phase", phase])
                if vdir_python and vconf:
                    row[f"vdirsyncer_{phase}"] = _run_child(
                        [str(vdir_python), str(Path(__file__)), "--child", "vdirsyncer", "--config", str(vconf),
                         "--phase", phase])
            results["sizes"][str(size)] = row
    ten = results["sizes"].get("10000")
    if ten:
        met = {p: ten[f"clinicbot_{p}"]["seconds"] <= t for p, t in TARGETS.items()}
        if with_vdirsyncer:
            met["peak_memory"] = max(ten[f"clinicbot_{p}"]["peak_rss_mb"] for p in TARGETS) <= max(
                ten[f"vdirsyncer_{p}"]["peak_rss_mb"] for p in TARGETS)
        results["targets_met"] = met
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--skip-vdirsyncer", action="store_true")
    parser.add_argument("--child", choices=["clinicbot", "vdirsyncer"])
    parser.add_argument("--db")
    parser.add_argument("--url")
    parser.add_argument("--config")
    parser.add_argument("--phase")
    args = parser.parse_args()
    if args.child == "clinicbot":
        out = asyncio.run(_clinicbot_child(Path(args.db), args.url, args.phase))
        print(json.dumps(out, default=str))
        return
    if args.child == "vdirsyncer":
        out = _vdirsyncer_child(Path(args.config), args.phase)
        print(json.dumps(out))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(json.dumps(bench(sizes, not args.skip_vdirsyncer), indent=2, default=str))


if __name__ == "__main__":
    main()
