"""Whole-process start-up: what a person waits for from typing `clinicbot ...` to its answer (issue 23).

    python -m bench.startup [--runs 5] [--compare main=/work/main/.venv/bin/python]

Each case runs the installed `clinicbot` script as a new process, in a scratch folder with a fresh SQLite
database brought to the newest revision first, and measures its wall time, its CPU time (user + system,
from the kernel's accounting of the child: hardly moved by other work on the machine, unlike the wall
time) and its peak RSS; a separate run with `-X importtime` counts the modules it imports. The cases:

- `--version` and `--help`: the command group alone;
- `db upgrade` on an up-to-date database: settings, key, store, the migration check;
- `serve` until `/healthz` answers 200 (the CPU time and peak RSS are read from /proc at that moment).

The baselines, in the same run: a bare `python -c pass` (the interpreter's own floor) and
`python -c "import sqlalchemy"` (the floor of anything that touches the database). `--compare NAME=PYTHON`
adds another checkout's virtualenv (its `clinicbot` script beside that python), measured in the same
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
BASELINES = {"python -c pass": ["-c", "pass"], 'python -c "import sqlalchemy"': ["-c", "import sqlalchemy"]}
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
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


def _run(argv: list[str], folder: Path, env: dict[str, str]) -> dict[str, float]:
    """Run to completion: wall seconds, CPU seconds and peak RSS (MB) of the child."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"{argv} exited {proc.returncode}: {err[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def _healthz(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def _serve(script: Path, folder: Path, env: dict[str, str]) -> dict[str, float]:
    """`clinicbot serve` until /healthz answers: the wall time; the CPU time and peak RSS at that moment."""
    port = _free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([str(script), "serve", "--port", str(port)], cwd=folder, env=env,
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
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": hwm / 1024}


def _modules(argv: list[str], folder: Path, env: dict[str, str]) -> int:
    """How many modules the process imports (`-X importtime` writes one line per module)."""
    out = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=folder, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    return sum(1 for line in out.stderr.splitlines() if line.startswith("import time:") and "|" in line
               and not line.endswith("| imported package"))


def _serve_modules(python: str, folder: Path, env: dict[str, str]) -> int:
    """The modules `serve` has imported by the time /healthz answers (`-X importtime`, as `_modules`)."""
    port = _free_port()
    log = folder / "serve-importtime.txt"
    with log.open("w") as err:
        proc = subprocess.Popen([python, "-X", "importtime", str(Path(python).parent / "clinicbot"), "serve",
                                 "--port", str(port)], cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            started = time.perf_counter()
            while not _healthz(port):
                if proc.poll() is not None or time.perf_counter() - started > 120:
                    raise RuntimeError("clinicbot serve did not answer /healthz")
                time.sleep(0.01)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    lines = log.read_text().splitlines()
    return sum(1 for line in lines if line.startswith("import time:") and "|" in line
               and not line.endswith("| imported package"))


def _summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("wall_s", "cpu_s", "peak_rss_mb"):
        values = [s[key] for s in samples]
        out[key] = {"median": round(statistics.median(values), 3), "min": round(min(values), 3)}
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
    modules: dict[str, dict[str, int]] = {n: {} for n in pythons}
    with tempfile.TemporaryDirectory(prefix="clinicbot-startup-") as tmp:
        folders = {}
        for name, python in pythons.items():
            folder = Path(tmp) / name
            folder.mkdir()
            folders[name] = folder
            script = Path(python).parent / "clinicbot"
            _run([str(script), "db", "upgrade"], folder, _env(folder, key))  # the database is current from here on
            env = _env(folder, key)
            for case in ("--version", "--help", "db upgrade"):
                modules[name][case] = _modules([python, str(script), *case.split()], folder, env)
            modules[name]["serve to /healthz"] = _serve_modules(python, folder, env)
        base_modules = {b: _modules([sys.executable, *argv], Path(tmp), dict(os.environ))
                        for b, argv in BASELINES.items()}
        for run in range(args.runs):
            order = list(pythons) if run % 2 == 0 else list(reversed(pythons))
            for baseline, argv in BASELINES.items():
                base_samples[baseline].append(_run([sys.executable, *argv], Path(tmp), dict(os.environ)))
            for case in CASES:
                for name in order:  # alternate: each checkout runs each case right after the other
                    folder, script = folders[name], Path(pythons[name]).parent / "clinicbot"
                    env = _env(folder, key)
                    if case == "serve to /healthz":
                        samples[name][case].append(_serve(script, folder, env))
                    else:
                        samples[name][case].append(_run([str(script), *case.split()], folder, env))
    result: dict[str, Any] = {
        "benchmark": "startup",
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "baselines": {b: {**_summary(s), "modules": base_modules[b]} for b, s in base_samples.items()},
        "checkouts": {name: {"python": pythons[name],
                             "cases": {c: {**_summary(samples[name][c]), "modules": modules[name][c]}
                                       for c in CASES}}
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
