"""How fast /slack/events acknowledges: clinicbot's server vs a bare slack-bolt AsyncApp, same run.

    python -m bench.slack_ack [--seconds 10] [--connections 64] [--runs 3] [--drain 30]

All servers run in their own processes on loopback, pinned to the last CPU; the load generator
(wrk with bench/slack_ack.lua, see bench/slack_load.py) and the fake Slack that receives
clinicbot's answers at response_url run pinned to the other CPU(s), so generator and server do not
fight over one core. Every request is a signed `/clinic today` with a distinct body, signed just
before its run (none is stale, none is a replay); both sides get a set of the same shape.

The baseline is a bare AsyncApp (default settings, so bolt's 10 ms ack polling applies) whose
listener only does `await ack("pong")`. clinicbot runs as `clinicbot serve` does (tune_for_serving)
and does the real thing: verify the signature, then answer. The first `/clinic today` of a person
is acknowledged at once and answered at its response_url after the background work (resolve the
user, read the day, render Block Kit, POST). A repeat is answered inside the acknowledgement from
the answer cache (bot/commands/answers.py): `answered_in_ack` counts those, and the Block Kit the
benchmark's requests get is the full agenda, not a "pong". An ack that says "busy" means the
background queue was full: refused, not served (`busy_acks`, `accepted_rps`). After the load the
benchmark waits up to `--drain` seconds for every answer owed to a response_url.

The same bare app with `process_before_response=True` is measured too (`bare_bolt_no_polling`):
with it bolt runs the listener before it answers and returns the ack at once, instead of polling
every 10 ms for it. Under 64 connections that floor hides behind the queueing; so each run also
sends one request at a time for `--light-seconds` to both bolt apps and to clinicbot
(`one_connection`), where it is the whole latency. clinicbot runs bolt that way, and does its slow
work off the request in its own bounded queue.

In the same run a plain aiohttp server that reads the body and answers "pong" (no Slack, no
signature) is measured too (`aiohttp_floor`): what any aiohttp server achieves on this machine
under the same load, so the figures can be read against it. Each run starts fresh servers, warms
all three, then measures each for `--seconds`; the JSON gives every run and the median of the
runs. Targets: throughput ratio (clinicbot / bare bolt) >= 1.0 and clinicbot p99 ack <= 15 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
TARGET_RATIO = 1.0
TARGET_P99_MS = 15.0


# --- servers (run in child processes) ------------------------------------------------------------
def _serve_bare(port: int, process_before_response: bool = False) -> None:
    from aiohttp import web
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.authorization import AuthorizeResult

    async def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token=TOKEN, bot_user_id="UBOT")

    bolt = AsyncApp(signing_secret=SECRET, authorize=authorize, process_before_response=process_before_response)

    @bolt.command("/clinic")
    async def pong(ack: Any) -> None:
        await ack("pong")

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _serve_floor(port: int) -> None:
    """Not a Slack app: plain aiohttp reading the body and answering "pong", no signature check.
    What any aiohttp server costs here; the floor under both sides' latency on this machine."""
    from aiohttp import web

    async def events(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="pong")

    app = web.Application()
    app.router.add_post("/slack/events", events)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _serve_ours(port: int, api_url: str, folder: str) -> None:
    from aiohttp import web

    from bot.app import build_app, tune_for_serving
    from sync.runtime.settings import Settings
    from sync.store.crypto import new_key

    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{folder}/bench.sqlite3",  # type: ignore[call-arg]
        secret_key=new_key(),
        secret_key_file=Path(folder) / "key",
        slack_signing_secret=SECRET,
        slack_bot_token=TOKEN,
        slack_api_url=api_url,
        log_level="WARNING",
    )
    app = build_app(settings)

    async def seed(app: web.Application) -> None:
        from datetime import UTC, datetime, timedelta

        from sqlalchemy import select

        from bot.app import CORE
        from sync.store.model import Appointment, ChatIdentity, Practice, Practitioner, Role

        core = app[CORE]
        async with core.store.session() as s:
            practice = await s.scalar(select(Practice))
            assert practice is not None
            practice.slack_team_id = "T1"
            pr = Practitioner(
                practice_id=practice.id, name="Dr Lee", handle="dr-lee", timezone="UTC", reminder_prefs={}
            )
            s.add(pr)
            await s.flush()
            today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
            for i in range(8):
                start = today + timedelta(minutes=45 * i)
                s.add(
                    Appointment(
                        practice_id=practice.id,
                        practitioner_id=pr.id,
                        start=start,
                        end=start + timedelta(minutes=30),
                        client_name=f"Client {i}",
                        service="Physio",
                        exdates=[],
                    )
                )
            ident = ChatIdentity(
                practice_id=practice.id, platform="slack", workspace_id="T1", user_id="US", display_name="us"
            )
            s.add(ident)
            await s.flush()
            s.add(Role(chat_identity_id=ident.id, role="admin", granted_by="bench"))

    app.on_startup.append(seed)
    tune_for_serving(app)  # as `clinicbot serve` does
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- orchestration --------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_split() -> tuple[set[int] | None, set[int] | None]:
    """(generator CPUs, server CPUs): servers on the last CPU, the rest for wrk and the fake Slack."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return set(cpus[:-1]), {cpus[-1]}


async def _wait_up(url: str, seconds: float = 30) -> None:
    import aiohttp

    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/healthz") as r:
                    if r.status in (200, 404):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up")


class _Run:
    """One run: fresh servers, a fake Slack, and a request set per measured load."""

    def __init__(self, args: argparse.Namespace, folder: Path, wrk: str | None, fake: Any) -> None:
        self.args = args
        self.folder = folder
        self.wrk = wrk
        self.fake = fake
        self.gen_cpus, self.server_cpus = _cpu_split() if args.pin else (None, None)
        self.sets = 0

    def _answers(self) -> int:
        return len(self.fake.calls_to("response_url"))

    async def load(self, port: int, seconds: float, register: bool, connections: int = 0) -> dict[str, Any]:
        from bench.slack_load import python_load, write_set, wrk_load

        self.sets += 1
        set_file = self.folder / f"set{self.sets}.txt"
        size = int(self.args.max_rps * seconds)
        rids = write_set(set_file, SECRET, self.fake.url, f"s{self.sets}x", size)
        if register:
            for rid in rids:
                self.fake.response_url(rid)
        url = f"http://127.0.0.1:{port}"
        if self.wrk:
            return await wrk_load(
                self.wrk, url, set_file, connections or self.args.connections, seconds, self.args.threads, self.gen_cpus
            )
        return await python_load(url, set_file, connections or self.args.connections, seconds, 2, self.gen_cpus)

    async def settle(self, want: int, within: float) -> float | None:
        """Wait until `want` answers have arrived in all; seconds it took, None if not within."""
        t0 = time.perf_counter()
        while self._answers() < want:
            if time.perf_counter() - t0 > within:
                return None
            await asyncio.sleep(0.05)
        return round(time.perf_counter() - t0, 2)

    async def run(self, env: dict[str, str]) -> dict[str, Any]:
        a = self.args
        ours, bare, quick, floor = _free_port(), _free_port(), _free_port(), _free_port()
        pin = ["--cpus", ",".join(map(str, sorted(self.server_cpus)))] if self.server_cpus else []
        me = [sys.executable, "-m", "bench.slack_ack"]
        procs = [
            subprocess.Popen(
                [*me, "--serve", "ours", "--port", str(ours), "--api-url", self.fake.url + "/api",
                 "--folder", str(self.folder), *pin], env=env,
            ),
            subprocess.Popen([*me, "--serve", "bare", "--port", str(bare), *pin], env=env),
            subprocess.Popen([*me, "--serve", "bare-no-polling", "--port", str(quick), *pin], env=env),
            subprocess.Popen([*me, "--serve", "floor", "--port", str(floor), *pin], env=env),
        ]  # fmt: skip
        try:
            await _wait_up(f"http://127.0.0.1:{ours}")
            await _wait_up(f"http://127.0.0.1:{bare}")
            await _wait_up(f"http://127.0.0.1:{quick}")
            await _wait_up(f"http://127.0.0.1:{floor}")
            await self.load(floor, a.warmup, register=False)
            await self.load(bare, a.warmup, register=False)
            await self.load(quick, a.warmup, register=False)
            warm = await self.load(ours, a.warmup, register=True)
            await self.settle(_posted(warm), a.drain)  # ours idle again before bare is measured
            await asyncio.sleep(0.5)
            plain = await self.load(floor, a.seconds, register=False)
            base = await self.load(bare, a.seconds, register=False)
            no_polling = await self.load(quick, a.seconds, register=False)
            before = self._answers()
            result = await self.load(ours, a.seconds, register=True)
            during = self._answers() - before
            took = await self.settle(before + _posted(result), a.drain)
            delivered = self._answers() - before + result["answered_in_ack"]
            light = {  # one request at a time: the latency floor of each, where bolt's polling shows
                side: await self.load(port, a.light_seconds, register=side == "clinicbot", connections=1)
                for side, port in (("bare_bolt", bare), ("bare_bolt_no_polling", quick), ("clinicbot", ours))
            }
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)
        result["answers"] = {
            "expected": result["accepted"],
            "in_the_ack": result["answered_in_ack"],
            "posted_to_response_url_during_load": during,
            f"delivered_within_{a.drain:g}s_after_load": delivered,
            "all_delivered_seconds_after_load": took,
            "kept_up": during >= _posted(result),
        }
        ratio = round(result["rps"] / base["rps"], 3) if base["rps"] else 0.0
        accepted_ratio = round(result["accepted_rps"] / base["rps"], 3) if base["rps"] else 0.0
        return {
            "clinicbot": result,
            "bare_bolt": base,
            "bare_bolt_no_polling": no_polling,
            "aiohttp_floor": plain,
            "one_connection": light,
            "ratio": ratio,
            "accepted_ratio": accepted_ratio,
        }


def _posted(load: dict[str, Any]) -> int:
    """Answers that go to the response_url: every accepted request not answered in its ack."""
    return int(load["accepted"] - load["answered_in_ack"])


def _median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else round((v[len(v) // 2 - 1] + v[len(v) // 2]) / 2, 3)


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    from bench.slack_load import find_wrk
    from tests.fakes.slack import FakeSlack

    wrk, how = find_wrk(install=args.install_wrk) if not args.python_load else (None, "--python-load")
    gen_cpus, server_cpus = _cpu_split() if args.pin else (None, None)
    if gen_cpus:
        os.sched_setaffinity(0, gen_cpus)  # this process hosts the fake Slack: keep it off the servers' CPU
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    runs = []
    for _ in range(args.runs):
        fake = await FakeSlack(bot_token=TOKEN).start()
        try:
            with tempfile.TemporaryDirectory() as folder:
                runs.append(await _Run(args, Path(folder), wrk, fake).run(env))
        finally:
            await fake.stop()
    keys = ("rps", "accepted_rps", "p50_ms", "p90_ms", "p99_ms", "busy_acks", "answered_in_ack")
    sides = ("clinicbot", "bare_bolt", "bare_bolt_no_polling", "aiohttp_floor")
    median = {side: {k: _median([r[side][k] for r in runs]) for k in keys} for side in sides}
    median["clinicbot"]["answers_kept_up_runs"] = sum(r["clinicbot"]["answers"]["kept_up"] for r in runs)
    ratio = _median([r["ratio"] for r in runs])
    accepted_ratio = _median([r["accepted_ratio"] for r in runs])
    p99 = median["clinicbot"]["p99_ms"]
    busy = median["clinicbot"]["busy_acks"]
    return {
        "benchmark": "slack_ack",
        "generator": f"wrk -t{args.threads} -c{args.connections} -d{args.seconds:g}s ({how})"
        if wrk
        else f"python, 2 processes, {args.connections} connections ({how})",
        "pinning": {"generator_and_fake_slack": sorted(gen_cpus or []), "servers": sorted(server_cpus or [])},
        "runs": len(runs),
        "median": {
            **median,
            "throughput_ratio": ratio,
            "accepted_throughput_ratio": accepted_ratio,
            "busy_acks_dominate": busy > median["clinicbot"]["accepted_rps"] * args.seconds,
        },
        "targets": {"throughput_ratio_min": TARGET_RATIO, "p99_ack_ms_max": TARGET_P99_MS},
        "p99_ms_over_aiohttp_floor": round(p99 - median["aiohttp_floor"]["p99_ms"], 2),
        "one_connection_median": {
            side: {k: _median([r["one_connection"][side][k] for r in runs]) for k in ("rps", "p50_ms", "p99_ms")}
            for side in ("bare_bolt", "bare_bolt_no_polling", "clinicbot")
        },
        "met": {
            "throughput_ratio": ratio >= TARGET_RATIO,
            "accepted_throughput_ratio": accepted_ratio >= TARGET_RATIO,
            "p99_ack": p99 <= TARGET_P99_MS,
        },
        "each_run": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured load per side per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up load per side per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--light-seconds", type=float, default=3.0, help="one-connection load per side per run")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for answers after the load")
    parser.add_argument("--max-rps", type=int, default=15000, help="distinct requests signed per second of load")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin to CPUs")
    parser.add_argument("--no-install-wrk", dest="install_wrk", action="store_false")
    parser.add_argument("--python-load", action="store_true", help="use the Python generator, not wrk")
    parser.add_argument("--serve", choices=["ours", "bare", "bare-no-polling", "floor"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--api-url")
    parser.add_argument("--folder")
    parser.add_argument("--cpus")
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    if args.serve == "bare":
        _serve_bare(args.port)
    elif args.serve == "bare-no-polling":
        _serve_bare(args.port, process_before_response=True)
    elif args.serve == "floor":
        _serve_floor(args.port)
    elif args.serve == "ours":
        _serve_ours(args.port, args.api_url, args.folder)
    else:
        print(json.dumps(asyncio.run(_bench(args)), indent=2))


if __name__ == "__main__":
    main()
