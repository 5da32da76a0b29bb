"""Teams turns per second: clinicbot's /api/messages against a stock botbuilder CloudAdapter echo bot.

Both servers run in their own process and answer every message through the same loopback fake
Bot Connector (run here, in a thread). The load is `--requests` message activities at
`--concurrency` concurrent requests. clinicbot runs a real command ("help": identity lookup,
conversation reference upkeep, a card); the stock bot only echoes. Authentication is off for both
(no token round trips), so the figure is the CPU cost of a turn.

Prints JSON: turns/s and server CPU ms per turn for each, both ratios (throughput, and stock CPU
per turn over clinicbot's), the load generator's own CPU per turn, and the CPU cost of building
one msrest ConnectorClient (what stock botbuilder does on every turn and clinicbot does once per
serviceUrl). Target: clinicbot >= 4x the stock bot's throughput.

`--runs N` repeats the pair (stock, then clinicbot, fresh servers each time) and reports the
median of each figure next to every run. On a shared, busy machine throughput swings with the
neighbours' load; CPU per turn is the steadier figure, so both ratios are reported.

    /work/venv/bin/python -m bench.teams_turns [--requests 2000] [--concurrency 64] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.bot_connector import FakeBotConnector

TARGET_RATIO = 4.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_clinicbot(port: int, folder: str, openid_url: str) -> None:
    import logging

    from aiohttp import web

    from bot.app import build_app
    from sync.runtime.settings import Settings
    from sync.store.crypto import new_key

    logging.disable(logging.WARNING)
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{folder}/bench.sqlite3",  # type: ignore[call-arg]
        secret_key=new_key(),
        secret_key_file=Path(folder) / "k",
        host="127.0.0.1",
        port=port,
        botframework_openid_url=openid_url,
        scheduler_enabled=False,
    )
    web.run_app(build_app(settings), host="127.0.0.1", port=port, print=None, access_log=None)


def _serve_stock(port: int) -> None:
    """The botbuilder sample shape: CloudAdapter + ConfigurationBotFrameworkAuthentication + echo."""
    from aiohttp import web
    from botbuilder.core import ActivityHandler, MessageFactory, TurnContext
    from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication

    class Config:
        APP_ID = ""
        APP_PASSWORD = ""
        APP_TYPE = "MultiTenant"
        APP_TENANTID = ""

    class EchoBot(ActivityHandler):
        async def on_message_activity(self, turn_context: TurnContext) -> None:
            await turn_context.send_activity(MessageFactory.text(f"Echo: {turn_context.activity.text}"))

    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(Config()))
    bot = EchoBot()

    async def messages(request: web.Request) -> web.StreamResponse:
        return await adapter.process(request, bot)  # type: ignore[return-value]

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _activity(service_url: str, n: int) -> dict[str, Any]:
    user = n % 16
    return {
        "type": "message",
        "id": uuid.uuid4().hex[:16],
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": {"id": f"29:bench-{user}", "name": f"Bench {user}"},
        "text": "help",
        "conversation": {"id": f"a:bench-{user}", "conversationType": "personal", "tenantId": "bench-tenant"},
        "recipient": {"id": "28:bench-bot", "name": "clinicbot"},
        "channelData": {"tenant": {"id": "bench-tenant"}},
    }


async def _wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


async def _load(url: str, service_url: str, total: int, concurrency: int) -> tuple[float, int]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    counter = iter(range(total))
    failures = 0
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal failures
            for n in counter:
                async with session.post(url + "/api/messages", json=_activity(service_url, n)) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, failures


async def _measure(
    name: str, proc: multiprocessing.Process, url: str, fake: FakeBotConnector, total: int, concurrency: int
) -> dict[str, Any]:
    await _wait_ready(url)
    await _load(url, fake.service_url, min(200, total), concurrency)  # warm up: imports, caches, SQLite
    sent_before = len(fake.recorded.activities())
    cpu_before = _cpu_seconds(proc.pid or 0)
    own_before = time.process_time()
    elapsed, failures = await _load(url, fake.service_url, total, concurrency)
    cpu = _cpu_seconds(proc.pid or 0) - cpu_before
    own = time.process_time() - own_before
    await fake.wait_for(lambda r: len(r.activities()) >= sent_before + total - failures, timeout=30)
    return {
        "name": name,
        "turns": total,
        "failures": failures,
        "seconds": round(elapsed, 3),
        "turns_per_s": round(total / elapsed, 1),
        "server_cpu_ms_per_turn": round(cpu * 1000 / total, 3),
        # This process: the load generator and the fake connector (a thread) share it.
        "loadgen_and_fake_cpu_ms_per_turn": round(own * 1000 / total, 3),
        "replies_at_connector": len(fake.recorded.activities()) - sent_before,
    }


async def _connector_client_cost(samples: int = 200) -> float:
    from botframework.connector.aio import ConnectorClient
    from botframework.connector.auth import MicrosoftAppCredentials

    started = time.process_time()
    for _ in range(samples):
        ConnectorClient(MicrosoftAppCredentials.empty(), base_url="http://127.0.0.1:9/")
    return round((time.process_time() - started) * 1000 / samples, 3)


async def _run_pair(total: int, concurrency: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    results: list[dict[str, Any]] = []
    with FakeBotConnector() as fake, tempfile.TemporaryDirectory() as folder:
        for name in ("stock_botbuilder_echo", "clinicbot"):
            port = _free_port()
            if name == "clinicbot":
                proc = ctx.Process(target=_serve_clinicbot, args=(port, folder, fake.openid_url), daemon=True)
            else:
                proc = ctx.Process(target=_serve_stock, args=(port,), daemon=True)
            proc.start()
            try:
                results.append(await _measure(name, proc, f"http://127.0.0.1:{port}", fake, total, concurrency))
            finally:
                proc.terminate()
                proc.join(10)
    stock, ours = results
    return {
        "baseline": stock,
        "clinicbot": ours,
        "throughput_ratio": round(ours["turns_per_s"] / stock["turns_per_s"], 2),
        "cpu_per_turn_ratio": round(stock["server_cpu_ms_per_turn"] / ours["server_cpu_ms_per_turn"], 2),
    }


def _median(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(float(value))
    return round(statistics.median(values), 3)


async def main(total: int, concurrency: int, runs: int = 1) -> dict[str, Any]:
    pairs = [await _run_pair(total, concurrency) for _ in range(runs)]
    median = {
        side: {
            key: _median(pairs, side, key)
            for key in ("turns_per_s", "server_cpu_ms_per_turn", "loadgen_and_fake_cpu_ms_per_turn")
        }
        for side in ("baseline", "clinicbot")
    }
    ratio = _median(pairs, "throughput_ratio")
    return {
        "benchmark": "teams_turns",
        "concurrency": concurrency,
        "requests_per_run": total,
        "runs": pairs,
        "median": {
            **median,
            "throughput_ratio": ratio,
            "cpu_per_turn_ratio": _median(pairs, "cpu_per_turn_ratio"),
        },
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "connector_client_build_cpu_ms": await _connector_client_cost(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3, help="repeat the pair; medians are reported")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.requests, args.concurrency, args.runs)), indent=2))
