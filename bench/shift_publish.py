"""Benchmark: publish 5,000 shifts for 200 people to their Outlook calendars on the throttling fake Graph.

The fake Graph runs in a process of its own (multiprocessing), so its CPU is not counted against
clinicbot's; this process holds clinicbot only. The fake enforces Outlook's per-mailbox limits (4
concurrent requests, a request budget per window), runs at most 4 requests of a $batch at a time
(as Graph does), and holds each operation's slot for `--latency` s of simulated service time. The
run goes the way an admin's does: a CSV export imported into a fresh SQLite database, the
practice-wide connection, `publish`; then the same schedule with `--changes` shifts moved, and
publish again.

The throttle floor (the least wall time the service allows for the publish's writes, whatever the
client does, given $batch requests of 20 to stay near the minimum request count):
- a mailbox's writes run at most 4 at a time: ceil(busiest mailbox's writes / 4) x latency;
- a mailbox may have at most 4 items in the batches in flight (more could run at once), so at most
  4 x mailboxes items are in flight, in 4 x mailboxes / 20 full batches, each running 4 items at a
  time: ceil(writes / (4 x ceil(4 x mailboxes / 20))) x latency.
The floor is the larger. It counts item-times only: with full batches (the minimum request count)
each of a mailbox's writes holds its slot for the whole batch (5 item-times), so the busiest
mailbox's 25 writes take 7 batches one after another (3.5 s at 0.1 s), which the JSON reports
beside it as `floor_at_min_requests_s`. Nearing the packing floor takes smaller last batches, i.e.
more requests than the minimum: the writer spreads the last, partial round (200 writes) over up to
22 batches (within 1.05x the minimum), 12 writes each, 3 item-times instead of 5 (3.3 s). `--latency` is the simulated service time of one Graph write: 0.1 s by
default (Graph's own event writes take around that or longer); `--latency 0.002` makes the floor
vanish and shows clinicbot's own CPU cost instead (a best case for the service, labelled as such).

Printed JSON: requests against the minimum ceil(writes / 20) (target <= 1.05x), wall against the
floor (target <= 1.2x), wall against a bare httpx client sending the same writes with the same
schedule just before (`bare_client`: no database or planning; what the throttle and this machine
allow at that moment, so the ratio to it holds when a busy machine stretches both), clinicbot's CPU (this process only), the duplicates and losses found in the
mailboxes afterwards (target 0), the re-publish's writes (target <= 60 for 50 changes), and the
machine's load average (2 cores shared: a loaded machine stretches wall time).

    python -m bench.shift_publish [--people 200 --shifts 5000 --changes 50 --latency 0.1] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import math
import multiprocessing
import os
import tempfile
import time
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import requests
from aiohttp import web

from adapters.graph import GraphTransports
from adapters.graph.publishing import SHIFT_ID_PROPERTY
from sync.boot import open_core
from sync.services import shifts as service
from sync.services.connections import add_practice_wide
from sync.services.practices import create_practice
from sync.store.migrate import upgrade
from sync.store.model import ConsentGrant
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_login import RoutingAdapter
from tests.adapters.graph.fakes.graph_throttle import ThrottlePolicy
from tests.conftest import make_settings

CLIENT_ID = "bench-app"
CLIENT_SECRET = "bench-secret"
TENANT = "11111111-2222-4333-8444-555555555555"
ZONE = "America/Chicago"
LOGIN = "https://login.microsoftonline.com"


def export(people: int, shifts: int, moved: set[int], first_day: datetime) -> bytes:
    lines = ["Shift ID,Person,UniqueID,Custom1,Assignment,Start,End,Notes,Published"]
    for n in range(shifts):
        person = n % people
        day = first_day + timedelta(days=n // people)
        start = day.replace(hour=7 if n not in moved else 9)
        end = start + timedelta(hours=8)
        lines.append(f"S{n},Person {person},LB{person},p{person}@clinic.example,Day clinic,"
                     f"{start:%Y-%m-%d %H:%M},{end:%Y-%m-%d %H:%M},,Yes")
    return ("\n".join(lines) + "\n").encode()


# --- the fake Graph, in its own process -------------------------------------------------------------------


def _stats(fake: GraphFake, since: int, expected: int) -> dict[str, Any]:
    """What the parent reads back: requests, throttle counters, and what the mailboxes hold."""
    ids: list[str] = []
    for mbx in fake.store.mailboxes.values():
        for cal in mbx.calendars.values():
            for event in cal.events.values():
                for prop in event.fields.get("singleValueExtendedProperties") or []:
                    if prop.get("id") == SHIFT_ID_PROPERTY:
                        ids.append(prop["value"])
    stats = fake.throttle.stats.values()
    return {
        "batch_requests": sum(1 for m, p in fake.http_requests if m == "POST" and p.endswith("$batch")),
        "http_requests": len(fake.http_requests),
        "operations": len(fake.operations),
        "writes_since": sum(1 for m, p, _s in fake.operations[since:] if m in ("POST", "PATCH", "DELETE")
                            and "/events" in p),
        "events": len(ids), "duplicates": len(ids) - len(set(ids)), "losses": expected - len(set(ids)),
        "rejected": sum(st.rejected_budget + st.rejected_concurrency for st in stats),
        "max_in_flight": max((st.max_in_flight for st in stats), default=0),
        "busiest_mailbox_ops": max((st.admitted for st in stats), default=0),
        "mailboxes": sum(1 for st in stats if st.admitted),
    }


async def _serve_fake(conn: Connection, policy: ThrottlePolicy, people: int) -> None:
    fake = GraphFake(throttle=policy)
    start_cpu = [0.0]

    async def stats(request: web.Request) -> web.Response:
        q = request.query
        found = _stats(fake, int(q.get("since", "0")), int(q.get("expected", "0")))
        found["fake_cpu_s"] = round(time.process_time() - start_cpu[0], 3)
        return web.json_response(found)

    async def reset(request: web.Request) -> web.Response:
        start_cpu[0] = time.process_time()
        fake.http_requests.clear()
        fake.throttle.stats.clear()
        return web.json_response({"ok": True})

    async def token(request: web.Request) -> web.Response:
        return web.json_response({"token": fake.login.issue_app_token(CLIENT_ID, TENANT)})

    def control(app: web.Application) -> None:
        app.router.add_get("/_bench/stats", stats)
        app.router.add_post("/_bench/reset", reset)
        app.router.add_get("/_bench/token", token)

    url = await fake.start(extra_routes=control)
    fake.login.register_app(CLIENT_ID, CLIENT_SECRET)
    fake.login.grant_admin_consent(TENANT)
    for p in range(people):
        fake.add_user(f"p{p}@clinic.example", tenant_id=TENANT)
        fake.add_user(f"b{p}@clinic.example", tenant_id=TENANT)  # the bare client's mailboxes
    conn.send(url)
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until the parent says stop
    await fake.stop()


def fake_process(conn: Connection, latency: float, budget: int, window: float, people: int) -> None:
    """The child process: serve the throttling fake until the parent sends anything."""
    policy = ThrottlePolicy.scaled(window=window, budget=budget, op_latency=latency)
    asyncio.run(_serve_fake(conn, policy, people))


# --- clinicbot's side ---------------------------------------------------------------------------------------


async def bare_client(url: str, token: str, people: int, shifts: int, first_day: datetime) -> dict[str, Any]:
    """The baseline: the same writes ($batch of 20, one item per mailbox, 4 per mailbox in flight) from a
    bare httpx client with every body built beforehand: no database, no planning, no recording. What
    the throttle and this machine allow right now, to set clinicbot's wall time against."""
    per_batch = 20
    groups = max(1, math.ceil(people / per_batch))
    rounds = math.ceil(shifts / people)
    bodies: dict[int, list[list[dict[str, Any]]]] = {g: [[] for _ in range(rounds)] for g in range(groups)}
    for n in range(shifts):
        person, r = n % people, n // people
        start = (first_day + timedelta(days=r)).replace(hour=7).astimezone(ZoneInfo("UTC"))
        body = {"subject": "Day clinic", "showAs": "busy", "categories": ["Shift"], "isReminderOn": False,
                "start": {"dateTime": f"{start:%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"},
                "end": {"dateTime": f"{start + timedelta(hours=8):%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"},
                "body": {"contentType": "text", "content": "Assignment: Day clinic\nPublished by a bare client."},
                "transactionId": f"bare-{n}"}
        bodies[person // per_batch][r].append({
            "id": str(n), "method": "POST", "url": f"/users/b{person}@clinic.example/events", "body": body,
            "headers": {"Content-Type": "application/json"}})
    statuses: dict[int, int] = {}
    requests_made = 0

    async def worker(client: httpx.AsyncClient, group: int, first: int) -> None:
        nonlocal requests_made
        for r in range(first, rounds, 4):  # 4 workers a group: each mailbox has at most 4 items in flight
            if not bodies[group][r]:
                continue
            answer = (await client.post("/v1.0/$batch", json={"requests": bodies[group][r]})).json()
            requests_made += 1
            for item in answer["responses"]:
                statuses[item["status"]] = statuses.get(item["status"], 0) + 1

    limits = httpx.Limits(max_connections=4 * groups, max_keepalive_connections=4 * groups)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=60) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client, g, i) for g in range(groups) for i in range(4)))
        wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 3), "requests": requests_made, "statuses": statuses}


def floor_at_min_requests(latency: float, busiest: int, writes: int, mailboxes: int) -> float:
    """The least wall time for `writes` sent in full batches of 20 (the minimum request count): each of
    the busiest mailbox's writes holds one of its 4 slots for its whole batch, which runs 20 items 4 at
    a time (5 item-times), so its writes take ceil(busiest / 4) whole batches one after another. The
    packing floor (`floor_seconds`) counts item-times only, which no client reaches with full batches:
    its last writes would have to go in smaller batches, i.e. more requests."""
    if not writes:
        return 0.0
    per_mailbox = math.ceil(busiest / 4) * math.ceil(20 / 4) * latency
    return max(per_mailbox, floor_seconds(latency, busiest, writes, mailboxes))


def floor_seconds(latency: float, busiest: int, writes: int, mailboxes: int) -> float:
    """The least wall time the service allows for `writes` (see the module doc)."""
    if not writes:
        return 0.0
    per_mailbox = math.ceil(busiest / 4) * latency
    batches_in_flight = max(1, math.ceil(4 * mailboxes / 20))
    per_batch = math.ceil(writes / (4 * batches_in_flight)) * latency
    return max(per_mailbox, per_batch)


async def run(args: argparse.Namespace, url: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as control:

        async def stats(since: int = 0, expected: int = 0) -> dict[str, Any]:
            return (await control.get("/_bench/stats", params={"since": since, "expected": expected})).json()

        with tempfile.TemporaryDirectory() as tmp:
            settings = make_settings("sqlite", Path(tmp), graph_url=url, graph_client_id=CLIENT_ID,
                                     graph_client_secret=CLIENT_SECRET)
            core = open_core(settings)
            login = requests.Session()
            login.mount(LOGIN, RoutingAdapter(LOGIN, url))
            core.services.http_transport = GraphTransports(login=login)
            await upgrade(core.store)
            profiler = cProfile.Profile() if args.profile else None
            try:
                async with core.store.session() as s:
                    practice = await create_practice(s, "Bench Clinic", ZONE, "bench")
                    s.add(ConsentGrant(practice_id=practice.id, tenant_id=TENANT, granted=True))
                await add_practice_wide(core, "graph", None, TENANT, actor="bench")
                await service.set_identity_field(core, None, "custom1", actor="bench")
                first_day = (datetime.now(ZoneInfo(ZONE)) + timedelta(days=2)).replace(minute=0, second=0,
                                                                                      microsecond=0)
                snapshot = await service.parse_upload(core, None, "schedule.csv",
                                                      export(args.people, args.shifts, set(), first_day))
                await service.import_schedule(core, None, snapshot, actor="bench")
                # As `clinicbot serve` runs (bot.app.tune_for_serving), where the publish job and chat
                # uploads publish: what start-up loaded is out of the cyclic collector's view, so a full
                # collection during the publish does not stop the event loop for ~0.1 s.
                gc.collect()
                gc.freeze()
                token = (await control.get("/_bench/token")).json()["token"]
                bare = await bare_client(url, token, args.people, args.shifts, first_day)
                await control.post("/_bench/reset")
                if profiler:
                    profiler.enable()
                cpu0, t0 = time.process_time(), time.perf_counter()
                first = await service.publish(core, None, actor="bench")
                wall = time.perf_counter() - t0
                cpu = time.process_time() - cpu0
                if profiler:
                    profiler.disable()
                    profiler.dump_stats(args.profile)
                after = await stats(expected=args.shifts)
                moved = set(sorted(set(range(0, args.shifts, max(1, args.shifts // args.changes))))[: args.changes])
                snapshot = await service.parse_upload(core, None, "schedule.csv",
                                                      export(args.people, args.shifts, moved, first_day))
                await service.import_schedule(core, None, snapshot, actor="bench")
                mark = after["operations"]
                t1 = time.perf_counter()
                second = await service.publish(core, None, actor="bench")
                rewall = time.perf_counter() - t1
                again = await stats(since=mark, expected=args.shifts)
            finally:
                await core.close()
    # The directory check (is each UPN known?) reads 20 people per $batch; the rest are writes.
    directory = math.ceil(args.people / 20)
    requests_made = after["batch_requests"] - directory
    minimum = math.ceil(first.writes / 20)
    floor = floor_seconds(args.latency, after["busiest_mailbox_ops"], first.writes, after["mailboxes"])
    full_batches = floor_at_min_requests(args.latency, after["busiest_mailbox_ops"], first.writes, after["mailboxes"])
    return {
        "benchmark": "shift_publish",
        "fake_graph": "own process",
        "latency_s": args.latency,
        "people": args.people,
        "shifts": args.shifts,
        "publish": {
            "created": first.created, "failed": first.failed,
            "write_requests": requests_made, "minimum_requests": minimum,
            "requests_ratio": round(requests_made / minimum, 3) if minimum else None,
            "directory_check_requests": directory,
            "other_requests": after["http_requests"] - after["batch_requests"],
            "wall_s": round(wall, 3), "clinicbot_cpu_s": round(cpu, 3), "throttle_floor_s": round(floor, 3),
            "wall_over_floor": round(wall / floor, 2) if floor else None,
            "floor_at_min_requests_s": round(full_batches, 3),
            "wall_over_floor_at_min_requests": round(wall / full_batches, 2) if full_batches else None,
            "bare_client": bare,
            "wall_over_bare_client": round(wall / bare["wall_s"], 2) if bare["wall_s"] else None,
            "fake_graph_cpu_s": after["fake_cpu_s"],
            "throttled_items": after["rejected"], "max_in_flight_per_mailbox": after["max_in_flight"],
            "events": after["events"], "duplicates": after["duplicates"], "losses": after["losses"],
        },
        "republish": {
            "changes": len(moved), "writes": again["writes_since"], "updated": second.updated,
            "created": second.created, "deleted": second.deleted, "failed": second.failed,
            "wall_s": round(rewall, 3), "duplicates": again["duplicates"],
        },
        "targets": {"requests_ratio": 1.05, "wall_over_floor": 1.2, "duplicates": 0, "republish_writes": 60},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--shifts", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--window", type=float, default=4.0)
    parser.add_argument("--profile", default="", help="write a cProfile of clinicbot's publish to this file")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=fake_process, args=(theirs, args.latency, args.budget, args.window, args.people),
                        daemon=True)
    child.start()
    try:
        if not ours.poll(60):
            raise SystemExit("the fake Graph did not start within 60 s")
        url = ours.recv()
        print(json.dumps(asyncio.run(run(args, url)), indent=2))
    finally:
        ours.send("stop")
        child.join(30)
        if child.is_alive():
            child.terminate()


if __name__ == "__main__":
    main()
