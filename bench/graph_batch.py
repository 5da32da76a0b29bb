"""Benchmark: push appointment changes to one Outlook mailbox on the fake Graph, under throttling.

The fake enforces Outlook's documented per-mailbox limits: 4 concurrent requests, and a request
budget per window (10,000 per 10 minutes in the service; scaled down here to 1,000 per 4 s so the
run takes seconds, yet the budget, not this machine's speed, is what binds).
Each mailbox operation holds a concurrency slot for `--latency` seconds of simulated service time.

The fake runs in its own process (its CPU is the service's, not ours). Two runs, each on a fresh
fake with the same seed data and the same changes:
- batched:  GraphCalendar.apply (JSON $batch of 20, one batch per mailbox at a time);
- baseline "one-request-per-change": create/update/delete one HTTP request each, 4 at a time.

Printed JSON per run: HTTP requests used vs the $batch minimum ceil(N/20) (target <= 1.05x),
wall time vs the minimum the throttle imposes (target <= 1.2x), and a zero-duplicates /
zero-losses check of the mailbox afterwards. The throttle minimum uses the service time per
operation the fake measured (never less than --latency): on a loaded machine the fake's own
work and timer slippage make each operation hold its slot longer, which no client can beat.

    python -m bench.graph_batch [--changes 5000 --budget 1000 --window 4.0 --latency 0.002]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import requests

from adapters.graph import GraphTransports, open_calendar
from adapters.graph.auth import GraphAuthConfig, begin_sign_in, complete_sign_in
from adapters.graph.client import MAILBOX_CONCURRENCY, MAX_BATCH
from adapters.graph.mapping import event_to_graph
from adapters.graph.provider import Create, Delete, GraphCalendar, Update, WriteOp, transaction_id
from adapters.graph.settings import GraphSettings
from sync.contract import ConnectionInfo, ProviderError
from sync.contract.items import EventData, RemoteItem
from sync.runtime.settings import Settings
from tests.adapters.graph.fakes.graph_login import RoutingAdapter
from tests.adapters.graph.fakes.graph_throttle import ThrottlePolicy

CLIENT_ID = "bench-app"
CLIENT_SECRET = "bench-secret"
START = datetime(2030, 5, 6, 8, tzinfo=UTC)


def appointment(n: int, summary: str | None = None) -> EventData:
    start = START + timedelta(minutes=30 * n)
    return EventData(
        uid=f"bench-{n}",
        summary=summary or f"Visit {n}",
        start=start,
        end=start + timedelta(minutes=25),
        tzid="Europe/Berlin",
        clinicbot_id=f"A-{n}",
    )


def plan(changes: int) -> tuple[int, list[int], list[int], list[int]]:
    """(seeded events, indexes to create, to update, to delete): 60% creates, 30% updates, 10% deletes."""
    creates, updates = changes * 6 // 10, changes * 3 // 10
    deletes = changes - creates - updates
    seeded = updates + deletes
    return (
        seeded,
        list(range(seeded, seeded + creates)),
        list(range(updates)),
        list(range(updates, updates + deletes)),
    )


@dataclass
class Server:
    """The fake Graph running in a child process, and how to reach it."""

    process: asyncio.subprocess.Process
    url: str
    info: dict[str, str]
    control: httpx.AsyncClient

    async def state(self) -> dict[str, Any]:
        return (await self.control.get("/_fake/state")).json()  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.control.aclose()
        assert self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()


async def start_server(policy_args: list[str]) -> Server:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "ignore",
        "-m",
        "tests.adapters.graph.fakes.graph_server",
        *policy_args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    info = json.loads(await process.stdout.readline())
    return Server(process, info["url"], info, httpx.AsyncClient(base_url=info["url"], timeout=60))


async def setup(server: Server, seeded: int) -> tuple[GraphCalendar, dict[int, RemoteItem]]:
    info = server.info
    settings = Settings(_env_file=None).with_sections(  # type: ignore[call-arg]
        GraphSettings(  # type: ignore[call-arg]
            _env_file=None, graph_url=server.url, graph_client_id=info["client_id"],
            graph_client_secret=info["client_secret"],
        )
    )
    login = requests.Session()
    login.mount("https://login.microsoftonline.com", RoutingAdapter("https://login.microsoftonline.com", server.url))
    config = GraphAuthConfig.from_settings(settings, http_client=login)
    start = await begin_sign_in(config, "http://127.0.0.1:3978/oauth/graph/callback")
    answer = (await server.control.post("/_fake/approve", json={"auth_uri": start.auth_uri})).json()
    creds = await complete_sign_in(config, start.flow, answer)
    conn = ConnectionInfo("graph", info["upn"], {}, creds, None, GraphTransports(login=login))
    calendar = open_calendar(conn, "me/calendar", settings)
    # Existing appointments, written straight into the mailbox (not counted).
    made = (
        await server.control.post(
            "/_fake/seed", json={"events": [event_to_graph(appointment(n)) for n in range(seeded)]}
        )
    ).json()
    seeds = {n: RemoteItem(m["id"], m["etag"], appointment(n)) for n, m in enumerate(made)}
    await calendar.client.http.get("/me")  # warm the token and the connection; not a mailbox request
    await server.control.post("/_fake/reset")
    return calendar, seeds


def operations(
    seeds: dict[int, RemoteItem], creates: list[int], updates: list[int], deletes: list[int]
) -> list[WriteOp]:
    ops: list[WriteOp] = [Create(appointment(n), f"op-create-{n}") for n in creates]
    ops += [Update(seeds[n].remote_id, appointment(n, f"Moved {n}"), seeds[n].etag) for n in updates]
    ops += [Delete(seeds[n].remote_id, seeds[n].etag) for n in deletes]
    return ops


async def one_by_one(calendar: GraphCalendar, ops: list[WriteOp]) -> list[Any]:
    """Baseline: one HTTP request per change; the client's mailbox gate keeps 4 in flight."""

    async def run(op: WriteOp) -> Any:
        try:
            if isinstance(op, Create):
                return await calendar.create(op.event, op.idempotency_key)
            if isinstance(op, Update):
                return await calendar.update(op.remote_id, op.event, op.if_match)
            return await calendar.delete(op.remote_id, op.if_match)
        except ProviderError as exc:
            return exc

    return list(await asyncio.gather(*(run(op) for op in ops)))


def check(
    state: dict[str, Any],
    seeds: dict[int, RemoteItem],
    creates: list[int],
    updates: list[int],
    deletes: list[int],
    results: list[Any],
) -> dict[str, int]:
    events = {e["id"]: e for e in state["events"]}
    by_txn: dict[str, int] = {}
    for ev in events.values():
        if ev["transactionId"]:
            by_txn[ev["transactionId"]] = by_txn.get(ev["transactionId"], 0) + 1
    wanted = {transaction_id(f"op-create-{n}") for n in creates}
    expected_total = len(seeds) - len(deletes) + len(creates)
    duplicates = sum(c - 1 for c in by_txn.values() if c > 1) + len(set(by_txn) - wanted)
    lost_updates = sum(
        1 for n in updates if seeds[n].remote_id not in events or events[seeds[n].remote_id]["subject"] != f"Moved {n}"
    )
    lost_deletes = sum(1 for n in deletes if seeds[n].remote_id in events)
    return {
        "events_in_mailbox": len(events),
        "expected_events": expected_total,
        "duplicates": max(duplicates, len(events) - expected_total),
        "losses": len(wanted - set(by_txn)) + lost_updates + lost_deletes,
        "failed_operations": sum(1 for r in results if isinstance(r, ProviderError)),
    }


def throttle_minimum(n: int, policy: ThrottlePolicy, busy_seconds: float) -> float:
    """The least wall time the limits allow for n mailbox operations: 4 at a time, each taking the
    service time the fake measured (at least the simulated latency), and `budget` per window."""
    per_op = max(policy.op_latency, busy_seconds / n) / policy.concurrent
    concurrency_bound = n * per_op
    windows_waited = max(0, math.ceil(n / policy.budget) - 1)
    budget_bound = windows_waited * policy.window + (n - windows_waited * policy.budget) * per_op
    return max(concurrency_bound, budget_bound)


async def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    policy = ThrottlePolicy.scaled(window=args.window, budget=args.budget, op_latency=args.latency)
    server = await start_server(
        ["--budget", str(args.budget), "--window", str(args.window), "--latency", str(args.latency)]
    )
    seeded, creates, updates, deletes = plan(args.changes)
    try:
        calendar, seeds = await setup(server, seeded)
        ops = operations(seeds, creates, updates, deletes)
        try:
            started, cpu = time.perf_counter(), time.process_time()
            results = await (calendar.apply(ops) if kind == "batched" else one_by_one(calendar, ops))
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            await calendar.aclose()
        state = await server.state()
    finally:
        await server.close()
    requests_used = state["http_requests"]
    min_requests = math.ceil(len(ops) / MAX_BATCH)
    stats = state["throttle"]
    min_wall = throttle_minimum(len(ops), policy, stats.get("busy_seconds", 0.0))
    return {
        "run": kind,
        "changes": len(ops),
        "http_requests": requests_used,
        "batch_minimum_requests": min_requests,
        "requests_vs_batch_minimum": round(requests_used / min_requests, 3),
        "wall_seconds": round(wall, 3),
        "client_cpu_seconds": round(cpu, 3),
        "throttle_minimum_seconds": round(min_wall, 3),
        "throttle_minimum_nominal_seconds": round(throttle_minimum(len(ops), policy, 0.0), 3),
        "wall_vs_throttle_minimum": round(wall / min_wall, 3),
        "service_seconds_per_op": round(stats.get("busy_seconds", 0.0) / max(1, stats.get("admitted", 1)), 5),
        "throttled_429": stats.get("rejected_budget", 0) + stats.get("rejected_concurrency", 0),
        "max_in_flight": stats.get("max_in_flight", 0),
        **check(state, seeds, creates, updates, deletes, results),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    batched = await run("batched", args)
    baseline = await run("one-request-per-change", args)
    return {
        "benchmark": "graph_batch",
        "settings": {
            "changes": args.changes,
            "mailbox_concurrency": MAILBOX_CONCURRENCY,
            "budget": args.budget,
            "window_seconds": args.window,
            "op_latency_seconds": args.latency,
            "documented": "4 concurrent, 10000 requests / 600 s per app and mailbox",
        },
        "batched": batched,
        "baseline": baseline,
        "targets": {
            "zero_duplicates_and_losses": batched["duplicates"] == 0 and batched["losses"] == 0,
            "requests_le_1.05x_batch_minimum": batched["requests_vs_batch_minimum"] <= 1.05,
            "wall_le_1.2x_throttle_minimum": batched["wall_vs_throttle_minimum"] <= 1.2,
        },
        "baseline_over_batched": {
            "requests": round(baseline["http_requests"] / batched["http_requests"], 2),
            "wall": round(baseline["wall_seconds"] / batched["wall_seconds"], 2),
        },
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--changes", type=int, default=5000)
    parser.add_argument("--budget", type=int, default=1000, help="requests per window per mailbox")
    parser.add_argument("--window", type=float, default=4.0, help="seconds (600 in the service)")
    parser.add_argument("--latency", type=float, default=0.002, help="simulated seconds per mailbox operation")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))


if __name__ == "__main__":
    cli()
