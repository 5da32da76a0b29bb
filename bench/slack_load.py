"""The load generator behind bench/slack_ack: wrk with pre-signed distinct requests, or Python processes.

Every run gets its own request set, signed just before it starts (fresh timestamp, well inside
Slack's 5-minute window): signed `/clinic today` slash commands whose response_url and trigger_id
carry a distinct id, so no two are the same request and the server's replay check never fires.
Both sides of the comparison get a set of the same shape and size.

The generator is wrk (Debian package `wrk`; installed with apt-get when missing and allowed) driving
bench/slack_ack.lua: a closed loop of `connections` keep-alive connections for a fixed duration,
latency percentiles from wrk's own histogram. Without wrk, `python_load` runs the same loop in
several processes (slower: its own ceiling is reported as the generator, not hidden).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bot.slack.verify import sign

LUA = Path(__file__).with_name("slack_ack.lua")


def write_set(path: Path, secret: str, sink: str, tag: str, n: int) -> list[str]:
    """Sign `n` distinct `/clinic today` commands into `path`; returns their response ids."""
    stamp = str(int(time.time()))
    fields = {
        "team_id": "T1",
        "user_id": "US",
        "user_name": "us",
        "command": "/clinic",
        "text": "today",
        "channel_id": "C1",
        "response_url": f"{sink}/response/@",
        "trigger_id": "@",
        "api_app_id": "A1",
    }
    p, q, r = urlencode(fields).split("%40")  # "@" marks where the id goes
    rids = [f"{tag}{i}" for i in range(n)]
    example = p + rids[0] + q + rids[0] + r
    want = urlencode({**fields, "response_url": f"{sink}/response/{rids[0]}", "trigger_id": rids[0]})
    assert example == want, "body pieces do not rebuild the form body"
    pb, qb, rb = p.encode(), q.encode(), r.encode()
    lines = [stamp, p, q, r, tag]
    for rid in rids:
        idb = rid.encode()
        lines.append(sign(secret, stamp, pb + idb + qb + idb + rb)[3:])
    path.write_text("\n".join(lines) + "\n")
    return rids


def find_wrk(install: bool) -> tuple[str | None, str]:
    """wrk's path (installing the Debian package if allowed and needed) and what was done."""
    found = shutil.which("wrk")
    if found:
        return found, "wrk found"
    if not install or shutil.which("apt-get") is None or os.geteuid() != 0:
        return None, "wrk missing and not installed"
    done = subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, text=True, timeout=300, check=False)
    found = shutil.which("wrk")
    if found:
        return found, "wrk installed now with `apt-get install -y wrk`"
    return None, f"apt-get install wrk failed (exit {done.returncode})"


def _summary(raw: dict[str, Any]) -> dict[str, Any]:
    secs = raw["duration_us"] / 1e6
    ms = {k: round(raw[f"{k}_us"] / 1000, 2) for k in ("p50", "p75", "p90", "p99", "p999", "max")}
    accepted = raw["ok"] - raw["busy"]
    return {
        "requests": raw["requests"],
        "seconds": round(secs, 2),
        "rps": round(raw["requests"] / secs, 1),
        "accepted_rps": round(accepted / secs, 1),
        **{f"{k}_ms": v for k, v in ms.items()},
        "ok_200": raw["ok"],
        "busy_acks": raw["busy"],
        "accepted": accepted,
        "answered_in_ack": raw["in_ack"],
        "unauthorized_401": raw["unauthorized"],
        "other_status": raw["other_status"],
        "socket_errors": {k: raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")},
        "request_set_exhausted": raw["wrapped"] > 0,
    }


async def wrk_load(
    wrk: str, url: str, set_file: Path, connections: int, seconds: float, threads: int, cpus: set[int] | None
) -> dict[str, Any]:
    """Run wrk against `url` with the request set in `set_file`; wrk's figures as a dict."""
    cmd = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "--latency",
        "-s", str(LUA), url, "--", str(set_file), str(threads),
    ]  # fmt: skip
    if cpus:
        cmd = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    text = out.decode()
    line = next((ln for ln in text.splitlines() if ln.startswith("SLACK_ACK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode()[-500:]} {text[-500:]}")
    result = _summary(json.loads(line.removeprefix("SLACK_ACK_JSON ")))
    rps_line = next((ln for ln in text.splitlines() if ln.startswith("Requests/sec:")), "")
    result["wrk_requests_per_sec"] = float(rps_line.split()[-1]) if rps_line else None
    return result


# --- the fallback: several Python processes ---------------------------------------------------
def _worker(url: str, set_file: str, share: int, of: int, conns: int, seconds: float, sync: Any) -> None:
    import aiohttp

    lines = Path(set_file).read_text().splitlines()
    stamp, p, q, r, tag = lines[:5]
    sigs = [(i, s) for i, s in enumerate(lines[5:]) if i % of == share]
    lat: list[float] = []
    counts = {"ok": 0, "busy": 0, "in_ack": 0, "unauthorized": 0, "other_status": 0, "wrapped": 0}

    ready, go, out = sync
    ready.put(share)
    go.wait()  # every process is loaded: all start the clock together
    until = time.time() + seconds

    async def run() -> None:
        it = iter(sigs)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns)) as session:

            async def loop() -> None:
                for i, sig in it:
                    if time.time() > until:
                        return
                    rid = f"{tag}{i}"
                    body = f"{p}{rid}{q}{rid}{r}".encode()
                    headers = {
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Slack-Request-Timestamp": stamp,
                        "X-Slack-Signature": "v0=" + sig,
                    }
                    t0 = time.perf_counter()
                    async with session.post(url + "/slack/events", data=body, headers=headers) as resp:
                        text = await resp.read()
                    lat.append(time.perf_counter() - t0)
                    if resp.status == 200:
                        counts["ok"] += 1
                        busy = b"busy right now" in text
                        counts["busy"] += busy
                        counts["in_ack"] += not busy and b'"blocks"' in text
                    elif resp.status == 401:
                        counts["unauthorized"] += 1
                    else:
                        counts["other_status"] += 1
                counts["wrapped"] += 1  # ran out of distinct requests before the deadline

            await asyncio.gather(*(loop() for _ in range(conns)))

    asyncio.run(run())
    out.put((lat, counts))


async def python_load(
    url: str, set_file: Path, connections: int, seconds: float, procs: int, cpus: set[int] | None
) -> dict[str, Any]:
    """The same closed loop as wrk, in `procs` processes; used only when wrk is unavailable."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(
            target=_worker,
            args=(
                url,
                str(set_file),
                k,
                procs,
                connections // procs + (k < connections % procs),
                seconds,
                (ready, go, out),
            ),
        )
        for k in range(procs)
    ]
    for w in workers:
        w.start()
        if cpus:
            os.sched_setaffinity(w.pid or 0, cpus)
    for _ in workers:
        await asyncio.to_thread(ready.get)
    go.set()
    results = [await asyncio.to_thread(out.get) for _ in workers]
    for w in workers:
        w.join()
    lat = sorted(x for r in results for x in r[0])
    counts = {k: sum(r[1][k] for r in results) for k in results[0][1]}

    def pct(p: float) -> int:
        return int(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6) if lat else 0

    raw = {
        "requests": len(lat),
        "duration_us": int(seconds * 1e6),
        **{f"p{n}_us": pct(p) for n, p in (("50", 0.5), ("75", 0.75), ("90", 0.9), ("99", 0.99), ("999", 0.999))},
        "max_us": pct(1.0),
        **counts,
        "connect_errors": 0,
        "read_errors": 0,
        "write_errors": 0,
        "timeouts": 0,
    }
    return _summary(raw)
