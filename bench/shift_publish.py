"""Benchmark: publish 5,000 shifts for 200 people to their Outlook calendars on the throttling fake Graph.

The fake enforces Outlook's per-mailbox limits (4 concurrent requests, a request budget per
window) and holds each operation's slot for `--latency` s of simulated service time. The run goes
the way an admin's does: a CSV export imported into a fresh SQLite database, the practice-wide
connection, `publish`; then the same schedule with `--changes` shifts moved, and publish again.

Printed JSON:
- requests: the HTTP requests of the writes against the minimum, ceil(writes / 20) with $batch
  (target <= 1.05x), and the directory check (one $batch read per 20 people) beside it;
- wall time of the publish against the floor the throttle allows: the busiest mailbox's service
  time shared by its 4 concurrent slots, and 20 items per $batch run 4 at a time (target <= 1.2x);
- duplicates and losses in the mailboxes afterwards (target 0), and the re-publish's writes
  (target <= 60 for 50 changes).

    python -m bench.shift_publish [--people 200 --shifts 5000 --changes 50 --latency 0.002]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from adapters.graph import GraphTransports
from adapters.graph.publishing import SHIFT_ID_PROPERTY
from sync.boot import open_core
from sync.services import shifts as service
from sync.services.connections import add_practice_wide
from sync.services.practices import create_practice
from sync.store.migrate import upgrade
from sync.store.model import ConsentGrant
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_throttle import ThrottlePolicy
from tests.conftest import make_settings

CLIENT_ID = "bench-app"
CLIENT_SECRET = "bench-secret"
TENANT = "11111111-2222-4333-8444-555555555555"
ZONE = "America/Chicago"


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


def mailbox_check(fake: GraphFake, expected: int) -> dict[str, int]:
    ids: list[str] = []
    for mbx in fake.store.mailboxes.values():
        for cal in mbx.calendars.values():
            for event in cal.events.values():
                for prop in event.fields.get("singleValueExtendedProperties") or []:
                    if prop.get("id") == SHIFT_ID_PROPERTY:
                        ids.append(prop["value"])
    return {"events": len(ids), "duplicates": len(ids) - len(set(ids)), "losses": expected - len(set(ids))}


def batch_requests(fake: GraphFake) -> int:
    return sum(1 for method, path in fake.http_requests if method == "POST" and path.endswith("$batch"))


def floor_seconds(fake: GraphFake, latency: float, writes: int) -> float:
    """The least wall time the service allows: the busiest mailbox's hold time over 4 slots, and
    the $batch runs (20 items, 4 at a time) that `writes` need, all batches side by side."""
    busiest = max((st.busy_seconds for st in fake.throttle.stats.values()), default=0.0)
    mailbox_bound = busiest / 4
    batch_bound = math.ceil(min(writes, 20) / 4) * latency
    return max(mailbox_bound, batch_bound)


async def run(args: argparse.Namespace) -> dict[str, object]:
    policy = ThrottlePolicy.scaled(window=args.window, budget=args.budget, op_latency=args.latency)
    fake = GraphFake(throttle=policy)
    await fake.start()
    fake.login.register_app(CLIENT_ID, CLIENT_SECRET)
    fake.login.grant_admin_consent(TENANT)
    for p in range(args.people):
        fake.add_user(f"p{p}@clinic.example", tenant_id=TENANT)
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings("sqlite", Path(tmp), graph_url=fake.url, graph_client_id=CLIENT_ID,
                                 graph_client_secret=CLIENT_SECRET)
        core = open_core(settings)
        core.services.http_transport = GraphTransports(login=fake.login.http_client(fake.url))
        await upgrade(core.store)
        try:
            async with core.store.session() as s:
                practice = await create_practice(s, "Bench Clinic", ZONE, "bench")
                s.add(ConsentGrant(practice_id=practice.id, tenant_id=TENANT, granted=True))
            await add_practice_wide(core, "graph", None, TENANT, actor="bench")
            await service.set_identity_field(core, None, "custom1", actor="bench")
            first_day = (datetime.now(ZoneInfo(ZONE)) + timedelta(days=2)).replace(minute=0, second=0,
                                                                                  microsecond=0)
            data = export(args.people, args.shifts, set(), first_day)
            snapshot = await service.parse_upload(core, None, "schedule.csv", data)
            await service.import_schedule(core, None, snapshot, actor="bench")
            fake.http_requests.clear()
            fake.throttle.stats.clear()
            cpu0, t0 = time.process_time(), time.perf_counter()
            first = await service.publish(core, None, actor="bench")
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            # The directory check (is each UPN known?) reads 20 people per $batch; the rest are writes.
            directory = math.ceil(args.people / 20)
            requests = batch_requests(fake) - directory
            floor = floor_seconds(fake, args.latency, first.writes)
            check = mailbox_check(fake, args.shifts)
            rejected = sum(st.rejected_budget + st.rejected_concurrency for st in fake.throttle.stats.values())
            max_in_flight = max((st.max_in_flight for st in fake.throttle.stats.values()), default=0)
            moved = set(range(0, args.shifts, max(1, args.shifts // args.changes)))
            moved = set(sorted(moved)[: args.changes])
            snapshot = await service.parse_upload(core, None, "schedule.csv",
                                                  export(args.people, args.shifts, moved, first_day))
            await service.import_schedule(core, None, snapshot, actor="bench")
            before = len(fake.operations)
            t1 = time.perf_counter()
            second = await service.publish(core, None, actor="bench")
            rewall = time.perf_counter() - t1
            rewrites = sum(1 for m, p, _s in fake.operations[before:] if m in ("POST", "PATCH", "DELETE")
                           and "/events" in p)
        finally:
            await core.close()
            await fake.stop()
    minimum = math.ceil(first.writes / 20)
    return {
        "benchmark": "shift_publish",
        "load_average": os.getloadavg(),
        "people": args.people,
        "shifts": args.shifts,
        "publish": {
            "created": first.created, "failed": first.failed,
            "write_requests": requests, "minimum_requests": minimum,
            "requests_ratio": round(requests / minimum, 3) if minimum else None,
            "directory_check_requests": directory, "other_requests": len(fake.http_requests) - batch_requests(fake),
            "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "throttle_floor_s": round(floor, 3),
            "wall_over_floor": round(wall / floor, 2) if floor else None,
            "throttled_items": rejected, "max_in_flight_per_mailbox": max_in_flight,
            **check,
        },
        "republish": {
            "changes": len(moved), "writes": rewrites, "updated": second.updated, "created": second.created,
            "deleted": second.deleted, "failed": second.failed, "wall_s": round(rewall, 3),
        },
        "targets": {"requests_ratio": 1.05, "wall_over_floor": 1.2, "duplicates": 0, "republish_writes": 60},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--shifts", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.002)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--window", type=float, default=4.0)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
