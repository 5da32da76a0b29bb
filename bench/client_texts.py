"""Client texts benchmark: the one-minute reminder sweep, and sending through the loopback Twilio.

    python -m bench.client_texts [--visits 2000] [--send 300]

- sweep: `queue_reminders` over --visits visits in the next 24 h, each with a phone number, for a
  practice with reminders on. The first run queues one text each; the steady state is every later
  minute (nothing new), measured against the baseline of one ledger lookup per visit (the naive check
  the paged IN lookup replaces).
- send: `send_due` of --send texts to the loopback Twilio (claim committed, HTTP POST, outcome and
  audit entry committed, each), against the floor of the same number of bare httpx POSTs to the same
  fake. SQLite file database; best case for the network (loopback).
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select

from sync.boot import open_core
from sync.notify import client_reminders, clients
from sync.services.practices import create_practice
from sync.store.crypto import new_key
from sync.store.migrate import upgrade
from sync.store.model import Appointment, ClientNotice
from tests.adapters.twilio.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, TwilioFake
from tests.conftest import settings_with

NOW = datetime(2031, 5, 5, 9, 0, tzinfo=UTC)


async def _naive_sweep(core: Any) -> int:
    """The baseline: every visit in the window, one ledger lookup each."""
    found = 0
    async with core.store.session() as s:
        visits = (await s.scalars(select(Appointment).where(
            Appointment.status == "confirmed", Appointment.start > NOW + client_reminders.MIN_AHEAD,
            Appointment.start <= NOW + client_reminders.AHEAD))).all()
        for appt in visits:
            key = client_reminders.reminder_key(appt) + ":sms"
            if await s.scalar(select(ClientNotice.id).where(ClientNotice.key == key)) is not None:
                found += 1
    return found


async def _timed(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def run(visits: int, send: int) -> dict[str, Any]:
    fake = TwilioFake()
    await fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_with(
            database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}", secret_key_file=Path(tmp) / "k",
            secret_key=new_key(), twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
            twilio_from=fake.number, twilio_base_url=fake.url, public_url="https://bot.example")
        core = open_core(settings)
        core.clock = lambda: NOW
        try:
            await upgrade(core.store)
            async with core.store.session() as s:
                practice = await create_practice(s, "Northside", "Europe/London", "bench")
                practice.settings = {"client_channels": "sms", "client_reminders": True}
                practice_id = practice.id
            created = NOW - timedelta(days=7)
            async with core.store.session() as s:
                rows = []
                for n in range(visits):
                    start = NOW + timedelta(hours=1, minutes=5) + timedelta(seconds=n * (82000 // max(1, visits)))
                    rows.append({"practice_id": practice_id, "start": start, "end": start + timedelta(minutes=30),
                                 "tzid": "Europe/London", "status": "confirmed", "version": 1, "exdates": [],
                                 "rdates": [], "recurrence_key": "", "client_phone": f"+4477009{n:05d}",
                                 "created_at": created, "updated_at": created, "all_day": False,
                                 "transparent": False})
                await s.execute(insert(Appointment), rows)
            started = time.perf_counter()
            queued = await client_reminders.queue_reminders(core)
            first = time.perf_counter() - started
            steady = await _timed(lambda: client_reminders.queue_reminders(core), 5)
            naive = await _timed(lambda: _naive_sweep(core), 5)

            started = time.perf_counter()
            sent = 0
            while sent < send:
                sent += (await clients.send_due(core, limit=min(100, send - sent))).sent
            send_s = time.perf_counter() - started
            async with httpx.AsyncClient(base_url=fake.url, auth=(ACCOUNT_SID, AUTH_TOKEN)) as client:
                started = time.perf_counter()
                for n in range(send):
                    await client.post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                                      data={"To": f"+4477008{n:05d}", "From": fake.number, "Body": "floor"})
                floor_s = time.perf_counter() - started
        finally:
            await core.close()
            await fake.close()
    return {
        "benchmark": "client_texts",
        "visits_in_window": visits,
        "sweep": {"first_run_s": round(first, 3), "queued": queued, "steady_run_s": round(steady, 4),
                  "baseline_one_lookup_per_visit_s": round(naive, 4),
                  "speedup": round(naive / steady, 1) if steady else None},
        "send": {"texts": sent, "seconds": round(send_s, 3), "per_text_ms": round(1000 * send_s / max(1, sent), 2),
                 "floor_bare_posts_s": round(floor_s, 3),
                 "floor_per_post_ms": round(1000 * floor_s / max(1, send), 2)},
        "note": "SQLite file database, loopback Twilio fake in the same process (a best case for the network)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--visits", type=int, default=2000)
    parser.add_argument("--send", type=int, default=300)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.visits, args.send)), indent=2))


if __name__ == "__main__":
    main()
