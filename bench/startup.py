"""Whole-process start-up: what a person waits for from typing `clinicbot ...` to its answer (issue 23).

    python -m bench.startup [--runs 5] [--compare main=/work/main/.venv/bin/python]

Each case runs clinicbot as a new process, as its `clinicbot` script does (`from bot.cli import main;
sys.exit(main())`), in a scratch folder with a fresh SQLite database brought to the newest revision first,
and measures its wall time, its CPU time (user + system, from the kernel's accounting of the child: hardly
moved by other work on the machine, unlike the wall time), its peak RSS and the modules it has imported
(`len(sys.modules)`). The last two are read by the child as it exits (an atexit hook reading VmHWM): os.wait4's
ru_maxrss is not the child's own peak, Linux carries the parent's over into it. The cases:

- `--version` and `--help`: the command group alone;
- `db upgrade` on an up-to-date database: settings, key, store, the migration check;
- `serve` until `/healthz` answers 200 (the CPU time and peak RSS are read from /proc at that moment; the
  modules as it exits after SIGTERM).

The baselines, in the same run: a bare `python -c pass` (the interpreter's own floor) and
`python -c "import sqlalchemy"` (the floor of anything that touches the database). `--compare NAME=PYTHON`
adds another checkout's virtualenv python (its `bot.cli`), measured in the same
runs, alternating with this one run by run, so both see the same machine. The JSON gives the median and
the minimum of the runs, and the load average before and after.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CASES = ["--version", "--help", "db upgrade", "serve to /healthz"]
BASELINES = {"python -c pass": "pass\n", 'python -c "import sqlalchemy"': "import sqlalchemy\n"}
TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(folder: Path, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update(CLINICBOT_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}", CLINICBOT_SECRET_KEY=key,
               CLINICBOT_LOG_LEVEL="WARNING")
    return env


#: Run in the child before anything else: at exit, write its peak RSS (kB) and module count to $BENCH_STARTUP_OUT.
HOOK = """import atexit, os, sys
def _bench_report():
    with open('/proc/self/status') as f:
        hwm = next(line.split()[1] for line in f if line.startswith('VmHWM:'))
    with open(os.environ['BENCH_STARTUP_OUT'], 'w') as out:
        out.write(f'{hwm} {len(sys.modules)}')
atexit.register(_bench_report)
"""
#: What the `clinicbot` script does, after the hook.
CLINICBOT = "sys.argv = ['clinicbot', *sys.argv[1:]]\nfrom bot.cli import main\nsys.exit(main())\n"


def _report(env: dict[str, str]) -> tuple[float, int]:
    hwm, modules = Path(env["BENCH_STARTUP_OUT"]).read_text().split()
    return int(hwm) / 1024, int(modules)


def _run(argv: list[str], folder: Path, env: dict[str, str]) -> dict[str, float]:
    """`python -c HOOK+code args` to completion: wall and CPU seconds, peak RSS (MB), modules imported."""
    env = {**env, "BENCH_STARTUP_OUT": str(folder / "report.txt")}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"{argv} exited {proc.returncode}: {err[-2000:]}")
    rss, modules = _report(env)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": rss, "modules": modules}


def _healthz(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def _serve(python: str, folder: Path, env: dict[str, str]) -> dict[str, float]:
    """`clinicbot serve` until /healthz answers: the wall time; the CPU time and peak RSS at that moment."""
    port = _free_port()
    env = {**env, "BENCH_STARTUP_OUT": str(folder / "report.txt")}
    started = time.perf_counter()
    proc = subprocess.Popen([python, "-c", HOOK + CLINICBOT, "serve", "--port", str(port)], cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not _healthz(port):
            if proc.poll() is not None:
                raise RuntimeError(f"clinicbot serve exited {proc.returncode}")
            if time.perf_counter() - started > 120:
                raise RuntimeError("clinicbot serve did not answer /healthz in 120 s")
            time.sleep(0.005)
        wall = time.perf_counter() - started
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": hwm / 1024, "modules": _report(env)[1]}


def _summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("wall_s", "cpu_s", "peak_rss_mb"):
        values = [s[key] for s in samples]
        out[key] = {"median": round(statistics.median(values), 3), "min": round(min(values), 3)}
    out["modules"] = max(s["modules"] for s in samples)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=PYTHON",
                        help="another checkout's virtualenv python, measured alternately in the same runs")
    args = parser.parse_args()
    pythons = {"this": sys.executable}
    for item in args.compare:
        name, _, python = item.partition("=")
        pythons[name] = python
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    load_before = os.getloadavg()
    samples: dict[str, dict[str, list[dict[str, float]]]] = {n: {c: [] for c in CASES} for n in pythons}
    base_samples: dict[str, list[dict[str, float]]] = {b: [] for b in BASELINES}
    with tempfile.TemporaryDirectory(prefix="clinicbot-startup-") as tmp:
        folders = {}
        for name, python in pythons.items():
            folder = Path(tmp) / name
            folder.mkdir()
            folders[name] = folder
            # the database is current from here on
            _run([python, "-c", HOOK + CLINICBOT, "db", "upgrade"], folder, _env(folder, key))
        base_env = dict(os.environ)
        for run in range(args.runs):
            order = list(pythons) if run % 2 == 0 else list(reversed(pythons))
            for baseline, code in BASELINES.items():
                base_samples[baseline].append(_run([sys.executable, "-c", HOOK + code], Path(tmp), base_env))
            for case in CASES:
                for name in order:  # alternate: each checkout runs each case right after the other
                    folder, python = folders[name], pythons[name]
                    env = _env(folder, key)
                    if case == "serve to /healthz":
                        samples[name][case].append(_serve(python, folder, env))
                    else:
                        samples[name][case].append(_run([python, "-c", HOOK + CLINICBOT, *case.split()], folder, env))
    result: dict[str, Any] = {
        "benchmark": "startup",
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "baselines": {b: _summary(s) for b, s in base_samples.items()},
        "checkouts": {name: {"python": pythons[name], "cases": {c: _summary(samples[name][c]) for c in CASES}}
                      for name in pythons},
    }
    if len(pythons) > 1:
        others = [n for n in pythons if n != "this"]
        result["this_vs"] = {
            other: {c: {k: round(samples_median(samples["this"][c], k) / samples_median(samples[other][c], k), 3)
                        for k in ("wall_s", "cpu_s", "peak_rss_mb")} for c in CASES}
            for other in others
        }
    print(json.dumps(result, indent=2))


def samples_median(samples: list[dict[str, float]], key: str) -> float:
    return statistics.median(s[key] for s in samples)


if __name__ == "__main__":
    main()
