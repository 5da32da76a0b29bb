"""Polling one Nylas calendar: clinicbot's incremental poll vs listing the whole window again.

    python -m bench.nylas_poll [--events 2000] [--changed 5]

A work calendar holds `--events` events over the sync window (30 days back, 180 ahead) on the
loopback fake Nylas. The baseline is what a poll without a cursor costs: the whole window, 200
events a page. clinicbot's poll asks for what was `updated_after` the last read plus the ids still
in the window (`select=id`), so an event deleted outright is seen too. Both read the same changes
(`--changed` edits and one deletion; asserted). Loopback, so the times are a best case: against
Nylas the request counts and bytes are what matter. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from adapters.nylas.provider import NylasCalendar
from sync.contract import ConnectionInfo
from sync.contract.items import Window
from tests.adapters.nylas.fakes.nylas import NylasFake, timespan
from tests.conftest import settings_with


class Counting(httpx.AsyncBaseTransport):
    """Counts requests and response bytes."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests = 0
        self.bytes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        self.requests += 1
        self.bytes += len(body)
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)

    def take(self) -> dict[str, int]:
        out = {"requests": self.requests, "kilobytes": round(self.bytes / 1024)}
        self.requests = self.bytes = 0
        return out


async def run(events: int, changed: int) -> dict[str, Any]:
    fake = await NylasFake().start()
    try:
        fake.notify_changes = False
        grant = fake.add_grant("outreach@work.example", "microsoft")
        cal = next(iter(grant.calendars))
        now = datetime.now(UTC).replace(microsecond=0)
        window = Window.around(now)
        step = (window.end - window.start - timedelta(hours=2)) / events
        fake.advance(-86400)  # the calendar's events were made before clinicbot first read it
        made = [fake.server_add(grant, cal, {"title": f"Event {n}", "description": "x" * 200,
                                             "when": timespan(window.start + step * n + timedelta(minutes=30))})
                for n in range(events)]
        counting = Counting()
        conn = ConnectionInfo("nylas", grant.email, {"grant_id": grant.id}, {"grant_id": grant.id},
                              transport=counting)
        settings = settings_with(nylas_api_url=fake.url, nylas_api_key=fake.api_key)
        provider = NylasCalendar(conn, cal, settings)
        t0 = time.perf_counter()
        first = await provider.changes(None, window)
        full_ms = (time.perf_counter() - t0) * 1000
        full = {**counting.take(), "ms": round(full_ms, 1)}
        assert len(first.items) == events
        fake.advance(86400 + 600)
        for event in made[:changed]:
            fake.server_edit(grant, cal, event["id"], {"title": event["title"] + " (moved)"})
        fake.server_delete(grant, cal, made[-1]["id"])
        provider._clock = lambda: time.time() + 600  # the poll runs after the edits
        t0 = time.perf_counter()
        poll = await provider.changes(first.cursor, window)
        poll_ms = (time.perf_counter() - t0) * 1000
        incremental = {**counting.take(), "ms": round(poll_ms, 1)}
        assert {i.remote_id for i in poll.items} == {e["id"] for e in made[:changed]}
        assert poll.deleted_ids == [made[-1]["id"]] and not poll.full
        t0 = time.perf_counter()
        again = await provider.changes(None, window)
        again_ms = (time.perf_counter() - t0) * 1000
        baseline = {**counting.take(), "ms": round(again_ms, 1)}
        assert len(again.items) == events - 1
        await provider.aclose()
        return {"benchmark": "nylas_poll", "events": events, "changed": changed + 1,
                "note": "loopback fake: times are a best case; requests and bytes are what Nylas would see",
                "clinicbot_incremental_poll": incremental, "baseline_full_listing": baseline,
                "first_full_listing": full, "cursor_kilobytes": round(len(str(poll.cursor)) / 1024, 1),
                "bytes_ratio": round(baseline["kilobytes"] / max(incremental["kilobytes"], 1), 1)}
    finally:
        await fake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--changed", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.events, args.changed)), indent=2))


if __name__ == "__main__":
    main()
