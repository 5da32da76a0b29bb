"""Run the fake Graph in its own process (benchmarks: the service's CPU is not the client's).

    python -m tests.adapters.graph.fakes.graph_server --budget 1000 --window 2.0 --latency 0.002

Prints one JSON line {"url", "upn", "client_id", "client_secret"} and serves until stdin closes.
Test-only control routes beside the Graph ones:
- POST /_fake/seed {"events": [graph event JSON ...]}: write events straight into the mailbox;
  answers [{"id", "etag"} ...];
- POST /_fake/approve {"auth_uri"}: what the authorize page hands back after the user signs in;
- GET /_fake/state: events (id, subject, transactionId), HTTP requests served, throttle statistics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from aiohttp import web

from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_throttle import ThrottlePolicy

CLIENT_ID = "bench-app"
CLIENT_SECRET = "bench-secret"  # the fake authority's own test app
UPN = "dr.bench@clinic.example"


def control_routes(fake: GraphFake, app: web.Application) -> None:
    """Add the /_fake/ routes for `fake` to an aiohttp app."""
    mbx = fake.store.resolve(UPN)
    assert mbx is not None

    async def seed(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        out = []
        for event in body["events"]:
            stored, _ = fake.store.create(mbx, mbx.default_calendar, event)
            out.append({"id": stored.id, "etag": stored.etag})
        return web.json_response(out)

    async def approve(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        return web.json_response(fake.login.approve(body["auth_uri"], UPN))

    async def state(request: web.Request) -> web.Response:
        stats = fake.throttle.stats.get(mbx.user.oid)
        return web.json_response(
            {
                "events": [
                    {"id": e.id, "subject": e.fields.get("subject"), "transactionId": e.fields.get("transactionId")}
                    for e in mbx.default_calendar.events.values()
                ],
                "http_requests": len(fake.http_requests),
                "throttle": stats.__dict__ if stats else {},
            }
        )

    async def reset_counters(request: web.Request) -> web.Response:
        fake.http_requests.clear()
        return web.json_response({})

    app.router.add_post("/_fake/seed", seed)
    app.router.add_post("/_fake/approve", approve)
    app.router.add_get("/_fake/state", state)
    app.router.add_post("/_fake/reset", reset_counters)


async def serve(args: argparse.Namespace) -> None:
    policy = ThrottlePolicy.scaled(window=args.window, budget=args.budget, op_latency=args.latency)
    fake = GraphFake(throttle=policy)
    fake.add_user(UPN, tenant_id="bench-tenant")
    fake.login.register_app(CLIENT_ID, CLIENT_SECRET)
    await fake.start(extra_routes=lambda app: control_routes(fake, app))
    print(json.dumps({"url": fake.url, "upn": UPN, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=600.0)
    parser.add_argument("--latency", type=float, default=0.0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
