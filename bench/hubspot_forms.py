"""HubSpot form submissions polled into leads, against the loopback HubSpot fake.

    python -m bench.hubspot_forms [--connections 20] [--forms 3] [--submissions 600] [--database-url URL]

`--connections` HubSpot connections (one practice each), each naming `--forms` forms; `--submissions`
form submissions spread over all forms (some people twice: merged). Three polls of the leader's job:
the first takes every submission (several pages for a busy form), the second finds nothing new, the
third finds one new submission per connection. Reported for each: wall time, HubSpot requests, leads
taken; and the documented minimum for it (one request per form when nothing is new, ceil(n/50)
requests for a form with n new submissions: HubSpot's page limit is 50). One process on loopback
(fake and job share one event loop): an upper bound, not a HubSpot figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from sync.boot import open_core
from sync.notify.lead_forms import poll_forms
from sync.services.practices import create_practice
from sync.store.migrate import upgrade
from sync.store.model import Connection, Lead, LeadSubmission
from tests.adapters.hubspot.fakes.hubspot import HubSpotFake
from tests.conftest import drop_schema, make_settings

PATH = "/form-integrations/"


async def _poll(core: Any, fake: HubSpotFake, minimum: int) -> dict[str, Any]:
    before = fake.count("GET", PATH)
    began = time.perf_counter()
    stats = await poll_forms(core)
    wall = time.perf_counter() - began
    return {"wall_ms": round(wall * 1000, 1), "requests": fake.count("GET", PATH) - before,
            "requests_minimum": minimum, "taken": stats.taken, "duplicates": stats.duplicates,
            "failed": stats.failed}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="clinicbot-bench-"))
    fake = await HubSpotFake().start()
    backend = "postgres" if args.database_url else "sqlite"
    overrides: dict[str, Any] = {"hubspot_api_url": fake.url}
    if args.database_url:
        overrides["database_url"] = args.database_url
    settings = make_settings(backend, tmp, **overrides)
    core = open_core(settings)
    await upgrade(core.store)
    try:
        forms: list[list[str]] = []
        async with core.store.session() as s:
            for n in range(args.connections):
                practice = await create_practice(s, f"Bench Clinic {n}", "Europe/London", actor="bench")
                guids = [fake.add_form() for _ in range(args.forms)]
                forms.append(guids)
                s.add(Connection(practice_id=practice.id, provider="hubspot", account=f"bench{n}.hubspot.com",
                                 config={"forms": ",".join(guids)}, credentials={"password": fake.token}))
        every = [g for guids in forms for g in guids]
        people = max(1, int(args.submissions * 0.8))
        for i in range(args.submissions):
            person = i % people
            fake.submit(every[i % len(every)], {"email": f"person{person}@example.org", "firstname": f"P{person}",
                                                "service": "Physio", "preferred_times": "Tuesday afternoons"})
        per_form = [len(fake.forms[g]) for g in every]
        first = await _poll(core, fake, sum(max(1, math.ceil(n / 50)) for n in per_form))
        idle = await _poll(core, fake, len(every))
        for guids in forms:
            fake.submit(guids[0], {"email": f"new-{guids[0]}@example.org"})
        one_each = await _poll(core, fake, len(every))
        async with core.store.session() as s:
            stored = int(await s.scalar(select(func.count()).select_from(Lead)) or 0)
            taken = int(await s.scalar(select(func.count()).select_from(LeadSubmission)) or 0)
    finally:
        await core.close()
        await fake.close()
        if args.database_url:
            await drop_schema(settings)
    return {"benchmark": "hubspot_forms", "database": backend, "connections": args.connections,
            "forms": len(every), "submissions": args.submissions, "first_poll": first, "idle_poll": idle,
            "one_new_each": one_each, "submissions_taken": taken, "leads_stored": stored}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--forms", type=int, default=3)
    parser.add_argument("--submissions", type=int, default=600)
    parser.add_argument("--database-url", default="", help="e.g. postgresql://postgres@127.0.0.1:5432/test "
                        "(a fresh schema is used); default: a temporary SQLite file")
    args = parser.parse_args()
    json.dump(asyncio.run(run(args)), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
