"""Square booking webhooks at the running server: acknowledgement speed, time to appointments, API reads.

    python -m bench.booking_webhooks [--bookings 200] [--deliveries 1000] [--duplicates 0.2] [--concurrency 32]

A fake Square (tests/adapters/square/fakes) holds `--bookings` bookings of one team member and the
deliveries Square would send for them: one booking.created each, booking.updated for later changes
(each a new version), and `--duplicates` of the total sent twice. They are POSTed, signed, to
clinicbot's /webhooks/square/<connection> at `--concurrency` requests in flight; clinicbot verifies,
remembers the event id, queues a sync and answers. In the same run a bare aiohttp handler doing only
the same HMAC check answers the same deliveries (`bare_hmac`). Reported: acknowledged deliveries per
second and p99 ack latency for both; the seconds from the first delivery until every booking is an
appointment; the API reads per distinct booking change; duplicate appointments (must be 0) and
refused replays. Everything runs in one process on loopback (server, fake and load generator share
one event loop), so the figures are an upper bound on latency, not a server-only measurement.
Targets: p99 ack <= 50 ms; <= 1.1 API reads per distinct booking change; 0 duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from adapters.square.webhooks import SIGNATURE_HEADER, verify_signature
from bot.app import build_app, tune_for_serving
from sync.boot import open_core
from sync.engine.run import sync_connection
from sync.engine.subscriber import register
from sync.integrations.connect import begin_oauth, finish_oauth
from sync.integrations.push import ensure_push
from sync.runtime.syncqueue import SyncQueue
from sync.services.staff import map_staff
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Practitioner
from tests.adapters.square.fakes.square import SquareFake
from tests.conftest import TEST_KEY, drop_schema, settings_with
from tests.servers import free_port

Delivery = tuple[str, bytes, dict[str, str]]


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


async def _post_all(url_of: Any, deliveries: list[Delivery], concurrency: int) -> dict[str, Any]:
    """POST every delivery at `concurrency` in flight; statuses, latencies, wall time."""
    queue: asyncio.Queue[Delivery] = asyncio.Queue()
    for d in deliveries:
        queue.put_nowait(d)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def worker() -> None:
            while not queue.empty():
                url, body, headers = queue.get_nowait()
                began = time.perf_counter()
                async with http.post(url_of(url), data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                latencies.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"acks_per_second": round(len(deliveries) / wall, 1), "p99_ack_ms": round(_p99(latencies) * 1000, 2),
            "median_ack_ms": round(statistics.median(latencies) * 1000, 2), "statuses": statuses,
            "seconds": round(wall, 3)}


async def _bare(deliveries: list[Delivery], key: str, notification_url: str, concurrency: int) -> dict[str, Any]:
    """A bare aiohttp handler doing only the same signature check."""
    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        ok = verify_signature(body, request.headers.get(SIGNATURE_HEADER, ""), key, notification_url)
        return web.Response(status=200 if ok else 401)

    app = web.Application()
    app.router.add_post("/hook", handler)
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        return await _post_all(lambda _: str(server.make_url("/hook")), deliveries, concurrency)
    finally:
        await server.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fake = await SquareFake(page_size=100).start()
    tmp = Path(tempfile.mkdtemp(prefix="clinicbot-bench-"))
    port = free_port()
    schema = f"bench_{port}" if args.database_url else ""
    settings = settings_with(
        database_url=args.database_url or f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}", database_schema=schema,
        secret_key=TEST_KEY,
        secret_key_file=tmp / "key", square_api_url=fake.url, square_oauth_url=fake.url,
        square_client_id=fake.client_id, square_client_secret=fake.client_secret,
        public_url=f"http://127.0.0.1:{port}")
    core = open_core(settings)
    await upgrade(core.store)
    register(core)
    fake.add_staff("TM-A", "Alex")
    fake.add_customer("C1", "Jane", "Roe", "jane@example.org")
    async with core.store.session() as s:
        lee = Practitioner(practice_id=1, name="Dr Lee", handle="dr-lee")
        s.add(lee)
    pending = await begin_oauth(core, "square", practice_id=1, chat_identity_id=None)
    saved = await finish_oauth(core, "square", {"state": pending.state, "code": fake.authorize()})
    async with core.store.session() as s:
        found = await s.scalar(select(Practitioner).where(Practitioner.handle == "dr-lee"))
        assert found is not None
        await map_staff(s, found, "square", "TM-A", actor="bench")

    async def runner(connection_id: int) -> None:
        await sync_connection(core, connection_id)

    queue = core.services.sync_queue = SyncQueue(runner)
    app = build_app(core.settings, core=core)
    tune_for_serving(app)  # as `clinicbot serve` runs it (long-lived objects out of the GC's view)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        await ensure_push(core, saved.connection_id)
        (sub,) = fake.subscriptions.values()
        fake.deliver = False
        rng = random.Random(14)
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
        ids = []
        for n in range(args.bookings):
            ids.append((await fake.book("TM-A", start + timedelta(minutes=30 * n), 30, customer_id="C1"))["id"])
        distinct = int(args.deliveries * (1 - args.duplicates))
        while len(fake.held) < distinct:
            await fake.change(rng.choice(ids), seller_note=f"note {len(fake.held)}")
        held = list(fake.held)
        deliveries = held + [held[i] for i in rng.sample(range(len(held)), args.deliveries - distinct)]
        rng.shuffle(deliveries)
        bare = await _bare(deliveries, sub.signature_key, sub.notification_url, args.concurrency)
        reads_before = sum(1 for m, _ in fake.requests if m == "GET")
        began = time.perf_counter()
        served = await _post_all(lambda u: u, deliveries, args.concurrency)
        while True:
            await queue.drain()
            async with core.store.session() as s:
                count = await s.scalar(select(func.count()).select_from(Appointment))
            if count >= args.bookings or time.perf_counter() - began > args.timeout:
                break
            await asyncio.sleep(0.05)
        to_appointments = time.perf_counter() - began
        reads = sum(1 for m, _ in fake.requests if m == "GET") - reads_before
        async with core.store.session() as s:
            uids = (await s.execute(select(Appointment.source_uid, func.count()).group_by(Appointment.source_uid)))
            duplicates = sum(n - 1 for _, n in uids.all() if n > 1)
            count = await s.scalar(select(func.count()).select_from(Appointment))
        return {
            "benchmark": "booking_webhooks", "bookings": args.bookings, "deliveries": len(deliveries),
            "distinct_changes": distinct, "concurrency": args.concurrency,
            "clinicbot": served, "bare_hmac": bare,
            "p99_ratio": round(served["p99_ack_ms"] / max(bare["p99_ack_ms"], 0.001), 2),
            "seconds_until_all_appointments": round(to_appointments, 3), "appointments": count,
            "duplicate_appointments": duplicates, "replays_refused": served["statuses"].get(401, 0),
            "syncs_run": queue.runs, "api_reads": reads, "api_reads_per_distinct_change": round(reads / distinct, 3),
            "targets": {"p99_ack_ms": 50, "api_reads_per_distinct_change": 1.1, "duplicates": 0},
        }
    finally:
        await queue.close()
        await server.close()
        await core.close()
        await fake.close()
        await drop_schema(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=200)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--database-url", default="", help="e.g. postgresql://postgres@127.0.0.1:5432/test "
                        "(a fresh schema is used); default: a temporary SQLite file")
    args = parser.parse_args()
    json.dump(asyncio.run(run(args)), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
