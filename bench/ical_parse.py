"""Benchmark: reading N plain VEVENTs with clinicbot's iCalendar reader vs the icalendar library.

    /work/venv/bin/python -m bench.ical_parse [N]

Prints one JSON object: wall and CPU seconds for our reader and for icalendar (from_ical plus
decoding the same fields, the baseline), the CPU speed-up (CPU time is the steadier figure on a
shared machine), and the serializer's time. Both parse the same text in the
same run; the best of three runs counts for ours, one run for the (slow) baseline.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import datetime, timedelta

import icalendar

from adapters.kit.ical import parse_events, serialize_calendar


def feed(count: int) -> str:
    """A VCALENDAR of `count` plain appointments, as a booking system would publish them."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//EN"]
    base = datetime(2026, 1, 5, 9)
    for n in range(count):
        start = base + timedelta(minutes=30 * n)
        end = start + timedelta(minutes=45)
        lines += [
            "BEGIN:VEVENT",
            f"UID:{uuid.uuid4()}",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART;TZID=Europe/Berlin:{start:%Y%m%dT%H%M%S}",
            f"DTEND;TZID=Europe/Berlin:{end:%Y%m%dT%H%M%S}",
            f"SUMMARY:Appointment {n}",
            "DESCRIPTION:Follow-up\\, bring referral",
            "LOCATION:Room 1",
            "STATUS:CONFIRMED",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def _ours(text: str) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds) of three runs."""
    wall = cpu = float("inf")
    for _ in range(3):
        began, began_cpu = time.perf_counter(), time.process_time()
        parse_events(text)
        wall = min(wall, time.perf_counter() - began)
        cpu = min(cpu, time.process_time() - began_cpu)
    return wall, cpu


def _icalendar(text: str) -> tuple[float, float]:
    began, began_cpu = time.perf_counter(), time.process_time()
    calendar = icalendar.Calendar.from_ical(text)
    for event in calendar.walk("VEVENT"):
        (str(event["UID"]), event.decoded("DTSTART"), event.decoded("DTEND"), str(event.get("SUMMARY")))
    return time.perf_counter() - began, time.process_time() - began_cpu


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    text = feed(count)
    ours, ours_cpu = _ours(text)
    baseline, baseline_cpu = _icalendar(text)
    events = parse_events(text)
    began = time.perf_counter()
    serialize_calendar(events)
    written = time.perf_counter() - began
    print(
        json.dumps(
            {
                "benchmark": "ical_parse",
                "events": count,
                "bytes": len(text.encode()),
                "clinicbot_parse_s": round(ours, 3),
                "clinicbot_parse_cpu_s": round(ours_cpu, 3),
                "baseline": "icalendar.Calendar.from_ical + decode",
                "baseline_parse_s": round(baseline, 3),
                "baseline_parse_cpu_s": round(baseline_cpu, 3),
                "speedup_cpu": round(baseline_cpu / ours_cpu, 1),
                "clinicbot_serialize_s": round(written, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
