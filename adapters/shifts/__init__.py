"""Shift schedules from a scheduler (Lightning Bolt, QGenda, Deputy...), published to staff calendars.

Lightning Bolt has no public API, so a published schedule reaches clinicbot as an export file
(`clinicbot shifts import FILE`, or a file an admin sends the bot). The integration reads the file
into a ShiftSnapshot; the core diffs it against what was last published and a publishing
integration (Graph) writes each mapped person's shifts into their own calendar.
"""

from __future__ import annotations

from adapters.shifts.csvfile import parse_csv
from adapters.shifts.feed import parse_ics, read_feed
from adapters.shifts.push import DELIVERY_HEADER, MAX_PUSH_BYTES, SIGNATURE_HEADER, parse_push, sign, verify_push
from sync.contract.integration import ConnectSpec, Integration, Profile
from sync.contract.shifts import ShiftSourceSlot

__all__ = ["INTEGRATION", "parse_csv", "parse_ics", "parse_push", "read_feed", "sign", "verify_push"]

INTEGRATION = Integration(
    name="shifts",
    title="Shift schedule (Lightning Bolt, QGenda, Deputy exports)",
    aliases=("lightningbolt", "qgenda", "deputy", "schedule"),
    connect=ConnectSpec(
        kinds=("feed_url",),
        steps=(
            "In the scheduler, export the published schedule as CSV (person with UniqueID and Custom1-4, "
            "assignment, start, end, notes, published).",
            "Run `clinicbot shifts import FILE` on the server (add --dry-run first to see what would change).",
            "Or read the scheduler's published iCalendar feed: `clinicbot shifts feed URL` (read every 5 minutes), "
            "or let it push signed JSON: `clinicbot shifts push-secret` prints the address and the secret.",
            "Say which field holds each person's Microsoft sign-in: `clinicbot shifts identity-field custom1`; "
            "people with it empty get no shifts in Outlook.",
        ),
        setup_hint="publishing needs the practice-wide Outlook connection (`clinicbot connection add graph "
        "--application --tenant ...`)",
    ),
    shift_source=ShiftSourceSlot(
        extensions=(".csv",), parse_file=parse_csv, read_feed=read_feed, verify_push=verify_push,
        parse_push=parse_push, push_delivery_header=DELIVERY_HEADER, push_signature_header=SIGNATURE_HEADER,
        push_max_bytes=MAX_PUSH_BYTES,
    ),
    profile=Profile(
        reads="published shift schedules (CSV export from the CLI or sent in Teams or Slack; iCalendar feed; "
        "signed JSON push)",
        writes="each mapped person's shifts into their own Outlook calendar (busy or free, notes per assignment)",
        arrives="on each import or push; the feed is read and what is pending published every 5 minutes",
        setup="the practice-wide Outlook connection; which person field holds the Microsoft sign-in",
    ),
)
