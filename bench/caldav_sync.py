"""Benchmark: sync one Radicale calendar into clinicbot's database, against vdirsyncer on the same calendar.

    /work/venv/bin/python -m bench.caldav_sync [--sizes 1000,10000] [--skip-vdirsyncer]
                                              [--database-url postgresql://...]

For each size it starts a Radicale on a copy of a prepared calendar and measures, for clinicbot
(SQLite, or PostgreSQL in a fresh schema with --database-url) and for vdirsyncer (filesystem storage, installed with pip into bench/.work/vdirsyncer-venv),
in this order: initial sync, re-sync with no change, re-sync after 10 server-side edits. Each
measurement runs in its own subprocess; `seconds` is the sync call itself (imports and set-up
excluded, on both sides), `process_seconds` the whole process, and `peak_rss_mb` the child's own peak
RSS (VmHWM, read by the child as it ends; os.wait4's ru_maxrss is not that: Linux carries the
spawning process's peak over into it at exec, so it never read below this process's own size). `radicale_only_<phase>` times the same sync-collection REPORT clinicbot sent,
bare, after it: the server's own share, the floor for that phase. Prints one JSON object with the
figures, the targets and whether each was met. BENCH_CPROFILE=/tmp/prof writes a cProfile of each
phase's sync call to /tmp/prof.<phase>.pstats (main thread only; the database driver's thread is not in it).

Server preparation (kept under bench/.work/prepared-<size>, reused for 25 days, reported under
`server_prep`): seeding the files, Radicale's item cache (its first read of an item parses it with
vobject, ~10 ms each) and Radicale's per-item sync history, which it builds on the FIRST
sync-collection REPORT a collection ever gets (another ~10 ms per item, once in the collection's
life; a Radicale that DAVx5, Thunderbird or Apple clients sync with already has it). Neither is
the client's work, so both are done before anything is measured; vdirsyncer uses neither report.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
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
#: Issue 23's targets at 10,000 events: at most this multiple of Radicale's own answer in the same run.
RADICALE_RATIO_TARGETS = {"initial": 1.3, "nochange": 1.1, "edits": 1.1}
VDIR_MEASURED = {"initial": 9.5, "nochange": 2.0, "edits": 2.1}


# ---- children -----------------------------------------------------------------------------------

async def _clinicbot_setup(db: Path, url: str, database: str) -> None:
    """Schema and the practice, connection and calendar rows (its own subprocess, not measured)."""
    from sync.boot import open_core
    from sync.store.migrate import upgrade
    from sync.store.model import Calendar, Connection, Practice

    core = open_core(_settings(db, database))
    try:
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
    finally:
        await core.close()


def _settings(db: Path, database: str = "") -> Any:
    """SQLite in the file `db`, or the PostgreSQL URL `database` in a schema named after `db`; the
    key file beside `db` (the parent writes it for PostgreSQL, which never generates one)."""
    from sync.runtime.settings import Settings

    url, schema = (database, f"bench_caldav_{db.parent.name}_{db.stem}".replace("-", "_")) if database else (
        f"sqlite+aiosqlite:///{db}", "")
    return Settings(_env_file=None, database_url=url, database_schema=schema,  # type: ignore[call-arg]
                    secret_key_file=db.with_suffix(".key"), allow_private_urls=True)


async def _clinicbot_child(db: Path, phase: str, database: str) -> dict[str, Any]:
    from sqlalchemy import select

    from sync.boot import open_core
    from sync.engine.run import sync_connection
    from sync.integrations import registry
    from sync.store.model import Connection

    registry.get("caldav")  # imports the adapter, as vdirsyncer's storages are imported below
    # ... and what httpx imports on its first request (httpcore, h11, anyio's asyncio backend: ~75
    # modules, 0.1-0.2 s on a loaded machine): a running server pays that once, not per sync.
    import anyio._backends._asyncio  # noqa: F401
    import httpcore  # noqa: F401
    core = open_core(_settings(db, database))
    try:
        async with core.store.session() as s:
            conn_id = (await s.scalars(select(Connection.id))).one()
        sampler = None
        if os.environ.get("BENCH_PROFILE"):  # a sampled profile of the sync call (bench/chat_mix.py's sampler)
            from bench.chat_mix import _Sampler

            sampler = _Sampler()
        profiler = None
        if os.environ.get("BENCH_CPROFILE"):  # a deterministic profile of the sync call (pstats file)
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        started = time.perf_counter()
        cpu_started = time.process_time()
        report = await sync_connection(core, conn_id)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{os.environ['BENCH_CPROFILE']}.{phase}.pstats")
        if sampler is not None:
            sampler.dump(f"{os.environ['BENCH_PROFILE']}.{phase}.txt")
        async with core.store.session() as s:
            error = (await s.get(Connection, conn_id)).last_error  # type: ignore[union-attr]
    finally:
        await core.close()
    if report.failed:
        raise RuntimeError(f"clinicbot sync failed: {error}")
    return {"seconds": seconds, "cpu_seconds": round(cpu_seconds, 3), "own_peak_rss_mb": _own_peak_mb(),
            "report": {k: v for k, v in report.as_dict().items() if v}}


def _own_peak_mb() -> float | None:
    """This process's own peak RSS (VmHWM of its memory map since exec), where /proc has it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _vdirsyncer_child(config: Path, phase: str) -> dict[str, Any]:
    os.environ["VDIRSYNCER_CONFIG"] = str(config)
    # Imports excluded on both sides: the modules `sync` would import lazily.
    import vdirsyncer.cli.tasks  # type: ignore[import-not-found]
    import vdirsyncer.storage.dav  # type: ignore[import-not-found]
    import vdirsyncer.storage.filesystem  # type: ignore[import-not-found]
    import vdirsyncer.storage.http  # type: ignore[import-not-found]  # noqa: F401
    from vdirsyncer.cli import app  # type: ignore[import-not-found]

    if phase == "setup":
        app.main(args=["discover"], standalone_mode=False)
        return {"seconds": 0.0}
    started = time.perf_counter()
    app.main(args=["sync"], standalone_mode=False)
    return {"seconds": time.perf_counter() - started, "own_peak_rss_mb": _own_peak_mb()}


# ---- the parent -----------------------------------------------------------------------------------

def _run_child(argv: list[str]) -> dict[str, Any]:
    """Run one measurement in a subprocess; its peak RSS is the child's own (see `_own_peak_mb`)."""
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
    own = result.pop("own_peak_rss_mb", None)
    result["peak_rss_mb"] = own if own is not None else round(usage.ru_maxrss / 1024, 1)
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


def _events(count: int, base: datetime) -> list[Any]:
    """`count` events from `base` on (deterministic, so a prepared calendar can be reused)."""
    from sync.contract.items import EventData

    out = []
    for n in range(count):
        start = base + timedelta(days=n % 300, minutes=30 * (n // 300 % 18))
        tag = hashlib.sha256(f"{base.isoformat()}/{n}".encode()).hexdigest()[:8]
        out.append(EventData(uid=f"bench-{n}-{tag}", summary=f"Physio: Client {n}",
                             start=start, end=start + timedelta(minutes=30),
                             description="Follow-up, bring referral", location="Room 1"))
    return out


async def _report(server: Any, name: str, body: bytes, method: str, depth: str) -> float:
    import httpx

    started = time.perf_counter()
    async with httpx.AsyncClient(auth=server.credentials(), timeout=3600) as client:
        r = await client.request(method, server.calendar_url("clinic", name), content=body,
                                 headers={"Depth": depth, "Content-Type": "application/xml"})
    if r.status_code != 207:
        raise RuntimeError(f"{method}: HTTP {r.status_code}")
    return time.perf_counter() - started


async def _stored_token(db: Path, database: str) -> str | None:
    """The sync-token clinicbot's cursor holds before a phase (None before the first sync)."""
    from sqlalchemy import select

    from sync.store.database import Store
    from sync.store.model import Calendar

    settings = _settings(db, database)
    store = Store(settings.database_url, settings.database_schema)
    try:
        async with store.session() as s:
            cursor = (await s.scalars(select(Calendar.cursor))).first()
    finally:
        await store.dispose()
    return cursor.split(":", 1)[1] if cursor and cursor.startswith("s1:") else None


async def _drop_schema(db: Path, database: str) -> None:
    from tests.conftest import drop_schema

    await drop_schema(_settings(db, database))


def _sync_report(token: str | None) -> bytes:
    """The sync-collection REPORT clinicbot sends: etags and calendar data since `token`."""
    from adapters.caldav.xml import C, D, sync_collection

    return sync_collection(token, [(D, "getetag"), (C, "calendar-data")])


PREP_VERSION = 1
PREP_MAX_AGE = timedelta(days=25)  # events start at the base date; the window looks 30 days back


def _prepared(size: int) -> tuple[Path, datetime, dict[str, Any]]:
    """A Radicale storage folder holding calendar cal<size>: seeded, item cache and sync history
    built. Made once and reused while its events still fall in the sync window."""
    from tests.adapters.caldav.fakes.radicale import RadicaleServer

    prep = WORK / f"prepared-{size}"
    meta_file = prep / "meta.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        base = datetime.fromisoformat(meta["base"])
        if meta.get("version") == PREP_VERSION and datetime.now(UTC) - base < PREP_MAX_AGE:
            return prep / "collections", base, {**meta["seconds"], "reused": True}
    shutil.rmtree(prep, ignore_errors=True)
    base = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    name = f"cal{size}"
    seconds: dict[str, float] = {}
    with RadicaleServer(prep) as server:
        asyncio.run(server.make_calendar("clinic", name))
        started = time.perf_counter()
        server.seed_events("clinic", name, _events(size, base))
        seconds["seed_files"] = time.perf_counter() - started
        getetag = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
        seconds["item_cache"] = asyncio.run(_report(server, name, getetag, "PROPFIND", "1"))
        first_sync = (b'<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/>'
                      b"<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>")
        seconds["sync_history"] = asyncio.run(_report(server, name, first_sync, "REPORT", "0"))
    seconds = {k: round(v, 2) for k, v in seconds.items()}
    meta_file.write_text(json.dumps({"version": PREP_VERSION, "base": base.isoformat(), "seconds": seconds}))
    return prep / "collections", base, {**seconds, "reused": False}


async def _edit(server: Any, name: str, events: list[Any]) -> None:
    """Ten server-side edits, as a booking platform would make them (PUT with If-Match)."""
    import httpx

    from adapters.caldav.resources import resource_name
    from adapters.kit.ical import serialize_calendar

    async with httpx.AsyncClient(auth=server.credentials(), timeout=60) as client:
        for ev in events[:10]:
            moved = ev.with_changes(start=ev.start + timedelta(hours=1), end=ev.end + timedelta(hours=1),
                                    summary=ev.summary + " (moved)")
            url = server.calendar_url("clinic", name) + resource_name(ev.uid)
            r = await client.put(url, content=serialize_calendar([moved]).encode(),
                                 headers={"Content-Type": "text/calendar; charset=utf-8"})
            if r.status_code not in (200, 201, 204):
                raise RuntimeError(f"edit PUT: HTTP {r.status_code}")


def bench(sizes: list[int], with_vdirsyncer: bool, database: str = "") -> dict[str, Any]:
    from sync.store.crypto import new_key
    from tests.adapters.caldav.fakes.radicale import RadicaleServer

    WORK.mkdir(parents=True, exist_ok=True)
    vdir_python = _ensure_vdirsyncer() if with_vdirsyncer else None
    run_dir = WORK / f"run-{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {"sizes": {}, "database": "postgresql" if database else "sqlite",
                               "load_average_start": [round(x, 2) for x in os.getloadavg()],
                               "targets_10k_seconds": TARGETS,
                               "targets_10k_x_radicale_only": RADICALE_RATIO_TARGETS,
                               "vdirsyncer_version": VDIRSYNCER_VERSION if with_vdirsyncer else None,
                               "note": "seconds = the sync call; process_seconds = whole subprocess; "
                                       "radicale_only = the same sync-collection REPORT sent bare "
                                       "(the server's floor)"}
    for size in sizes:
        name = f"cal{size}"
        storage, base, prep = _prepared(size)
        events = _events(size, base)
        server = RadicaleServer(run_dir / f"radicale-{size}")
        shutil.copytree(storage, server.storage)
        with server:
            url = server.calendar_url("clinic", name)
            db = run_dir / f"clinicbot-{size}.sqlite3"
            if database:  # PostgreSQL never generates a key: every replica must share one
                db.with_suffix(".key").write_text(new_key() + "\n")
            vconf = _vdir_config(run_dir / f"vdir-{size}", url) if vdir_python else None
            row: dict[str, Any] = {}
            # Set-up (schema and rows; vdirsyncer's `discover`) runs in its own subprocess on both sides.
            for phase in ("setup", "initial", "nochange", "edits"):
                if phase == "edits":
                    asyncio.run(_edit(server, name, events))
                token = asyncio.run(_stored_token(db, database)) if phase != "setup" else None
                clinicbot = _run_child(
                    [sys.executable, "-m", "bench.caldav_sync", "--child", "clinicbot", "--db", str(db),
                     "--url", url, "--phase", phase, "--database-url", database])
                if phase != "setup":
                    # The server's own share: the same REPORT clinicbot sent, bare (read-only, so
                    # replaying it after the client changes nothing).
                    row[f"radicale_only_{phase}"] = {"seconds": round(asyncio.run(_report(
                        server, name, _sync_report(token), "REPORT", "0")), 3)}
                vdir = _run_child(
                    [str(vdir_python), str(Path(__file__)), "--child", "vdirsyncer", "--config", str(vconf),
                     "--phase", phase]) if vdir_python and vconf else None
                if phase != "setup":
                    row[f"clinicbot_{phase}"] = clinicbot
                    if vdir is not None:
                        row[f"vdirsyncer_{phase}"] = vdir
            row["server_prep_seconds"] = prep
            results["sizes"][str(size)] = row
            if database:
                asyncio.run(_drop_schema(db, database))
        shutil.rmtree(server.root, ignore_errors=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    results["load_average"] = [round(x, 2) for x in os.getloadavg()]  # the machine's, at the end: read the wall times with it
    ten = results["sizes"].get("10000")
    if ten:
        met = {p: ten[f"clinicbot_{p}"]["seconds"] <= t for p, t in TARGETS.items()}
        for p, ratio in RADICALE_RATIO_TARGETS.items():
            floor = ten[f"radicale_only_{p}"]["seconds"]
            ten[f"clinicbot_{p}"]["x_radicale_only"] = round(ten[f"clinicbot_{p}"]["seconds"] / floor, 2) if floor else None
            met[f"{p}_x_radicale_only"] = bool(floor) and ten[f"clinicbot_{p}"]["seconds"] <= ratio * floor
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
    parser.add_argument("--database-url", default="", help="e.g. postgresql://postgres@127.0.0.1:5432/test "
                        "(a fresh schema per size, dropped after it); default: a SQLite file")
    args = parser.parse_args()
    if args.child == "clinicbot" and args.phase == "setup":
        asyncio.run(_clinicbot_setup(Path(args.db), args.url, args.database_url))
        print(json.dumps({"seconds": 0.0}))
        return
    if args.child == "clinicbot":
        out = asyncio.run(_clinicbot_child(Path(args.db), args.phase, args.database_url))
        print(json.dumps(out, default=str))
        return
    if args.child == "vdirsyncer":
        out = _vdirsyncer_child(Path(args.config), args.phase)
        print(json.dumps(out))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(json.dumps(bench(sizes, not args.skip_vdirsyncer, args.database_url), indent=2, default=str))


if __name__ == "__main__":
    main()
