"""Lead forms at the running server: signed submissions acknowledged, merged and refused, and staff cards.

    python -m bench.lead_forms [--forms 400] [--people 250] [--replays 0.1] [--concurrency 16]
                               [--practitioners 6] [--booked 120] [--cards 20] [--database-url URL]

`--forms` signed lead forms from `--people` distinct people (so some people write twice: merged into
their open lead), plus `--replays` of them sent again (refused 409), are POSTed to clinicbot's
/webhooks/leadform/<connection> at `--concurrency` in flight: verify on the raw body, remember the
submission, store the lead (encrypted, merged, audited) and record the staff notification (a
recording notifier: no chat platform in the loop). In the same run a bare aiohttp handler doing only
the HMAC check and the JSON decode answers the same bodies (`bare_hmac`). Then `--cards` staff cards
are built (each searches three weeks of `--practitioners` calendars holding `--booked` visits each
for slots fitting the lead's free-text preference). Reported: forms acknowledged per second and
p50/p99 latency for both; leads stored (must equal the people), merges, refused replays; the median
and p95 time to build a card. One process on loopback (server and load share one event loop): an
upper bound on latency, not a server-only figure.
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

from adapters.leadform import SIGNATURE_HEADER, sign, verify
from bot.app import build_app, tune_for_serving
from sync.boot import open_core
from sync.runtime.notifier import RecordingNotifier
from sync.services import leads
from sync.services.form_connections import add_signed_form
from sync.services.practices import add_practitioner, create_practice
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Lead, LeadSubmission
from tests.conftest import TEST_KEY, drop_schema, settings_with
from tests.servers import free_port

PREFERENCES = ["Tuesday afternoons", "after 5pm", "weekday mornings", "Mon or Thu", "between 9 and 11am",
               "whenever the kids are at school", "Saturday mornings", "Fridays after 3pm"]
SERVICES = ["Reiki", "Physio", "Massage", "Acupuncture"]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


async def _post_all(url: str, bodies: list[tuple[bytes, dict[str, str]]], concurrency: int) -> dict[str, Any]:
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def worker() -> None:
            while not queue.empty():
                body, headers = queue.get_nowait()
                began = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                latencies.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"per_second": round(len(bodies) / wall, 1), "p50_ms": round(_pct(latencies, 0.5) * 1000, 2),
            "p99_ms": round(_pct(latencies, 0.99) * 1000, 2), "statuses": dict(sorted(statuses.items()))}


async def _bare(bodies: list[tuple[bytes, dict[str, str]]], secret: str, concurrency: int) -> dict[str, Any]:
    """The baseline: a bare aiohttp handler doing only the HMAC check and the JSON decode."""
    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if verify(body, request.headers.get(SIGNATURE_HEADER, ""), secret, time.time()) is not None:
            return web.Response(status=401)
        json.loads(body)
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/form", handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        return await _post_all(str(server.make_url("/form")), bodies, concurrency)
    finally:
        await server.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(18)
    tmp = Path(tempfile.mkdtemp(prefix="clinicbot-bench-"))
    port = free_port()
    schema = f"bench_{port}" if args.database_url else ""
    settings = settings_with(
        database_url=args.database_url or f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}", database_schema=schema,
        secret_key=TEST_KEY, secret_key_file=tmp / "key", public_url=f"http://127.0.0.1:{port}")
    core = open_core(settings)
    await upgrade(core.store)
    tz = "Europe/London"
    async with core.store.session() as s:
        practice = await create_practice(s, "Bench Clinic", tz, actor="bench")
        people = [await add_practitioner(s, practice, f"Dr P{n}", email=None, tz=tz, actor="bench")
                  for n in range(args.practitioners)]
        practice_id, ids = practice.id, [p.id for p in people]
    # Each practitioner's next three weeks hold `--booked` visits in working hours.
    now = datetime.now(UTC)
    async with core.store.session() as s:
        for pid in ids:
            for _ in range(args.booked):
                day = now + timedelta(days=rng.randrange(1, 21))
                start = day.replace(hour=rng.randrange(8, 17), minute=rng.choice((0, 30)), second=0, microsecond=0)
                s.add(Appointment(practice_id=practice_id, practitioner_id=pid, start=start,
                                  end=start + timedelta(minutes=60), tzid=tz, service=rng.choice(SERVICES)))
    made = await add_signed_form(core, "leadform", practice_id=practice_id, actor="bench")
    core.services.notifier = RecordingNotifier()

    def form(n: int) -> tuple[bytes, dict[str, str]]:
        person = n % args.people
        body = json.dumps({"submission_id": f"bench-{n}", "name": f"Person {person}",
                           "email": f"person{person}@example.org", "service": rng.choice(SERVICES),
                           "preferred_times": [rng.choice(PREFERENCES)],
                           "practitioner": rng.choice(["", f"Dr P{rng.randrange(args.practitioners)}"])}).encode()
        return body, {SIGNATURE_HEADER: sign(body, made.secret, int(time.time())), "content-type": "application/json"}

    bodies = [form(n) for n in range(args.forms)]
    bodies += rng.sample(bodies, int(args.forms * args.replays))
    rng.shuffle(bodies)

    app = build_app(settings, core=core)
    tune_for_serving(app)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        clinicbot = await _post_all(f"http://127.0.0.1:{port}/webhooks/leadform/{made.connection_id}", bodies,
                                    args.concurrency)
    finally:
        await server.close()
    bare = await _bare(bodies, made.secret, args.concurrency)

    async with core.store.session() as s:
        stored = int(await s.scalar(select(func.count()).select_from(Lead)) or 0)
        taken = int(await s.scalar(select(func.count()).select_from(LeadSubmission)) or 0)
        lead_ids = list((await s.scalars(select(Lead.id).order_by(Lead.id).limit(args.cards))).all())
    card_times: list[float] = []
    slots_found = 0
    for lead_id in lead_ids:
        began = time.perf_counter()
        card = await leads.lead_card(core, practice_id, lead_id)
        card_times.append(time.perf_counter() - began)
        slots_found += len(card.slots)
    await core.close()
    if schema:
        await drop_schema(settings)
    return {
        "benchmark": "lead_forms",
        "database": "postgresql" if args.database_url else "sqlite",
        "forms": args.forms, "people": args.people, "replays_sent": len(bodies) - args.forms,
        "concurrency": args.concurrency,
        "clinicbot": clinicbot, "bare_hmac": bare,
        "leads_stored": stored, "leads_expected": min(args.people, args.forms),
        "merged": taken - stored, "replays_refused": clinicbot["statuses"].get(409, 0),
        "cards": {"built": len(card_times), "practitioners": args.practitioners, "visits_each": args.booked,
                  "median_ms": round(statistics.median(card_times) * 1000, 1) if card_times else 0.0,
                  "p95_ms": round(_pct(card_times, 0.95) * 1000, 1), "slots_offered": slots_found},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", type=int, default=400)
    parser.add_argument("--people", type=int, default=250)
    parser.add_argument("--replays", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--practitioners", type=int, default=6)
    parser.add_argument("--booked", type=int, default=120)
    parser.add_argument("--cards", type=int, default=20)
    parser.add_argument("--database-url", default="", help="e.g. postgresql://postgres@127.0.0.1:5432/test "
                        "(a fresh schema is used); default: a temporary SQLite file")
    args = parser.parse_args()
    json.dump(asyncio.run(run(args)), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
