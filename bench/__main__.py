"""`make bench` / `python -m bench [NAME ...]`: run the benchmarks one after another.

Each benchmark prints one JSON document comparing clinicbot with its named baseline, measured in
the same run. They are measurements, not tests: nothing here fails on a slow machine.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = {
    "caldav_sync": "CalDAV sync of one Radicale calendar vs vdirsyncer (issue 3)",
    "ical_parse": "iCalendar parsing: clinicbot's reader vs the icalendar library",
    "slack_ack": "signed /clinic commands at 64 concurrent vs a bare slack-bolt app (issue 4)",
    "teams_turns": "message activities at 64 concurrent vs a stock botbuilder echo bot (issue 5)",
    "graph_batch": "5,000 changes to one throttled mailbox: $batch vs one request per change (issue 6)",
    "reminders": "100k scheduled reminders and 1,000 due in one minute vs stock APScheduler (issue 7)",
    "agenda_render": "one day's agenda as Block Kit: plain JSON vs slack_sdk's block models",
    "audit_append": "audit appends and verify: keyed chain with a signed head vs the plain SHA-256 chain",
    "series_sweep": "the one-minute reminder sweep over 500 recurring series vs 500 plain appointments",
    "booking_webhooks": "1,000 signed Square deliveries (20% duplicates) at 32 concurrent vs a bare HMAC handler",
    "nylas_poll": "an incremental poll of a 2,000-event Nylas calendar vs listing the window again (issue 16)",
    "client_texts": "the 24 h client-reminder sweep over 2,000 visits and 300 texts to the loopback Twilio "
                    "vs one lookup per visit and bare POSTs",
    "lead_forms": "400 signed lead forms (some people twice, 10% replays) at 16 concurrent vs a bare HMAC handler; staff cards",
    "shift_publish": "5,000 shifts for 200 people to Outlook on the throttling fake Graph vs the request minimum and the throttle floor",
    "crm_log": "300 visits and 50 moves logged to HubSpot and Salesforce fakes vs the documented request minimum (issue 18)",
    "hubspot_forms": "600 HubSpot form submissions over 60 forms polled into leads; an idle poll vs one request "
                     "per form (issue 18)",
    "crm_series": "the CRM log's sweep of 500 recurring series for two CRMs: first, idle and a week later "
                  "(issue 18)",
    "audit_lock": "16 concurrent audited writers: the append lock held until commit only vs for the whole transaction",
    "chat_mix": "a real clinic's Slack and Teams traffic (200 people, 5,000 appointments) vs bare bolt and the echo bot (issue 23)",
    "startup": "whole-process start-up: --version, --help, db upgrade and serve to /healthz vs bare python and "
               "`import sqlalchemy` (issue 23)",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        print(f"# {name}: {BENCHMARKS[name]}", file=sys.stderr, flush=True)
        status |= subprocess.call([sys.executable, "-m", f"bench.{name}"])
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
