"""Shift schedules from a scheduler (Lightning Bolt, QGenda, Deputy...), published to staff calendars.

Lightning Bolt has no public API, so a published schedule reaches clinicbot as an export file
(`clinicbot shifts import FILE`, or a file an admin sends the bot). The integration reads the file
into a ShiftSnapshot; the core diffs it against what was last published and a publishing
integration (Graph) writes each mapped person's shifts into their own calendar.
"""

from __future__ import annotations

from adapters.shifts.csvfile import parse_csv
from sync.contract.integration import ConnectSpec, Integration, Profile
from sync.contract.shifts import ShiftSourceSlot

__all__ = ["INTEGRATION", "parse_csv"]

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
            "Say which field holds each person's Microsoft sign-in: `clinicbot shifts identity-field custom1`; "
            "people with it empty get no shifts in Outlook.",
        ),
        setup_hint="publishing needs the practice-wide Outlook connection (`clinicbot connection add graph "
        "--application --tenant ...`)",
    ),
    shift_source=ShiftSourceSlot(extensions=(".csv",), parse_file=parse_csv),
    profile=Profile(
        reads="published shift schedules (the scheduler's CSV export, from the CLI or sent in Teams)",
        writes="each mapped person's shifts into their own Outlook calendar (busy or free, notes per assignment)",
        arrives="on each import; what is pending is published every 5 minutes",
        setup="the practice-wide Outlook connection; which person field holds the Microsoft sign-in",
    ),
)
