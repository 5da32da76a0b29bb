"""Benchmark: a day of visits logged to HubSpot and to Salesforce on their loopback fakes.

`--visits` visits are booked (each as a sync would: the appointment row and its `created` event, so
the CRM log queues it in the same transaction), for `--clients` distinct clients; the leader's job
logs them all; then `--moves` of them are moved and the job runs again. Printed JSON, per CRM:
- requests per logged visit against the minimum the documented APIs allow: one write per visit (a
  HubSpot meeting create, a Salesforce upsert) and, per client, their look-up and creation (HubSpot:
  one contact search and one create; Salesforce: the Contact and the Lead queries, one Lead create),
  against the baseline of looking the client up again for every visit, as a per-visit write would;
- requests per move (minimum 1: the write itself, since the ids are kept);
- duplicates in the CRM afterwards (target 0) and the wall time (loopback fakes: a best case).

    python -m bench.crm_log [--visits 300 --clients 120 --moves 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.hubspot.client import HubSpotClient
from adapters.hubspot.meetings import ensure_key_property
from sync.boot import open_core
from sync.notify import crm
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent
from sync.services import moves
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Connection, Practice, Practitioner
from tests.adapters.hubspot.fakes.hubspot import HubSpotFake
from tests.adapters.salesforce.fakes.salesforce import SalesforceFake
from tests.conftest import make_settings

DAY = datetime(2031, 5, 5, 8, 0, tzinfo=UTC)


async def _book(core: Core, practice_id: int, practitioner_id: int, visits: int, clients: int) -> list[int]:
    ids = []
    async with core.store.session() as s:
        for n in range(visits):
            start = DAY + timedelta(days=n // 20, minutes=30 * (n % 20))
            appt = Appointment(practice_id=practice_id, practitioner_id=practitioner_id, start=start,
                               end=start + timedelta(minutes=30), tzid="Europe/London", status="confirmed",
                               version=1, exdates=[], client_name=f"Client {n % clients}",
                               client_email=f"client{n % clients}@example.org", service="Physio")
            s.add(appt)
            await s.flush()
            await core.bus.emit(s, AppointmentEvent("created", appt.id, 1, practice_id, practitioner_id,
                                                    "system:sync"))
            ids.append(appt.id)
    return ids


async def _one(name: str, visits: int, clients: int, moved: int, tmp: Path) -> dict[str, Any]:
    fake: Any = HubSpotFake(page_size=100) if name == "hubspot" else SalesforceFake(batch_size=2000)
    await fake.start()
    if name == "hubspot":
        settings = make_settings("sqlite", tmp, hubspot_api_url=fake.url)
    else:
        settings = make_settings("sqlite", tmp, salesforce_login_url=fake.url, allow_private_urls=True)
    core = open_core(settings)
    try:
        await upgrade(core.store)
        async with core.store.session() as s:
            practice = Practice(name="Bench Clinic", timezone="Europe/London")
            s.add(practice)
            await s.flush()
            lee = Practitioner(practice_id=practice.id, name="Dr Lee", handle="dr-lee", timezone="Europe/London")
            s.add(lee)
            await s.flush()
            if name == "hubspot":
                creds: dict[str, Any] = {"password": fake.token}
                config: dict[str, Any] = {"portal_id": str(fake.portal_id)}
            else:
                creds = {"access_token": fake.session(), "instance_url": fake.url}
                config = {"instance_url": fake.url}
            s.add(Connection(practice_id=practice.id, provider=name, account="bench", config=config,
                             credentials=creds))
            practice_id, lee_id = practice.id, lee.id
        if name == "hubspot":
            client = HubSpotClient(fake.url, fake.token)
            await ensure_key_property(client)
            await client.aclose()
        ids = await _book(core, practice_id, lee_id, visits, clients)
        fake.requests.clear()
        t0 = time.perf_counter()
        first = await crm.log_due(core, limit=visits + 10)
        log_s = time.perf_counter() - t0
        log_requests = len(fake.requests)
        for appt_id in ids[:moved]:
            await moves.move(core, practice_id, appt_id, DAY + timedelta(days=60, hours=appt_id), actor="bench")
        fake.requests.clear()
        t0 = time.perf_counter()
        second = await crm.log_due(core, limit=visits + 10)
        move_s = time.perf_counter() - t0
        move_requests = len(fake.requests)
        if name == "hubspot":
            records, people = len(fake.meetings), len(fake.contacts)
            minimum, per_visit_lookups = visits + clients * 2, visits + clients + visits
        else:
            records, people = len(fake.live("Event")), len(fake.live("Lead"))
            minimum, per_visit_lookups = visits + clients * 3, visits + clients + visits * 2
        return {
            "visits_logged": first.logged, "moves_logged": second.logged,
            "requests_per_visit": round(log_requests / visits, 2), "minimum_per_visit": round(minimum / visits, 2),
            "baseline_lookup_every_visit": round(per_visit_lookups / visits, 2),
            "requests_per_move": round(move_requests / max(moved, 1), 2), "minimum_per_move": 1.0,
            "duplicates": records - visits, "people_made": people, "people_expected": clients,
            "log_seconds": round(log_s, 2), "visits_per_second": round(visits / log_s, 1),
            "move_seconds": round(move_s, 2),
        }
    finally:
        await core.close()
        await fake.close()


async def run(visits: int, clients: int, moved: int) -> dict[str, Any]:
    out: dict[str, Any] = {"benchmark": "crm_log", "visits": visits, "clients": clients, "moves": moved,
                           "note": "loopback fakes on SQLite: times are a best case; requests are what the CRM sees"}
    for name in ("hubspot", "salesforce"):
        with tempfile.TemporaryDirectory() as tmp:
            out[name] = await _one(name, visits, clients, moved, Path(tmp))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=300)
    parser.add_argument("--clients", type=int, default=120)
    parser.add_argument("--moves", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.visits, args.clients, args.moves)), indent=2))


if __name__ == "__main__":
    main()
