"""Sample reminder-side views for the renderer tests (Slack and Teams)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.commands.actions import AskCancel, BookFollowUp, MarkAttended, MarkNoShow, OpenReschedule, ShowDetails
from bot.views import AgendaItem, FollowUp, FollowUpRequest, ReminderCard, ReminderHealth, Status, View

START = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
ITEM = AgendaItem(
    12,
    "A-12",
    3,
    START,
    START,
    "10:00–10:30",
    "Dr Lee",
    "A. E. <b>",
    "Check-up & more",
    "confirmed",
    actions=(OpenReschedule(12, 3), AskCancel(12, 3), ShowDetails(12)),
)
BARE = AgendaItem(12, "A-12", 3, START, START, "10:00–10:30", "Dr Lee", "A.E.", "Check-up", "completed")


def samples() -> list[tuple[str, View]]:
    """One of each reminder-side view, in the states a user can see."""
    health = ReminderHealth(12, 1, 2, 3, 1, "Tue 3 Mar 11:00", "Slack refused the message: ratelimited")
    return [
        ("reminder", ReminderCard(ITEM, "Reminder: starts in 60 minutes", "Tue 3 Mar 2026", "Europe/London", "Room 2")),
        ("reminder late", ReminderCard(ITEM, "Reminder: starts in 5 minutes", "Tue 3 Mar 2026", "UTC", late=True)),
        ("followup", FollowUp(BARE, "Tue 3 Mar 2026", "UTC", (MarkAttended(12), MarkNoShow(12), BookFollowUp(12)))),
        (
            "followup answered",
            FollowUp(
                BARE,
                "Tue 3 Mar 2026",
                "UTC",
                (),
                "A-12 marked attended by Sam.",
                "Already recorded.",
                ("Wed 4 Mar 08:00", "Wed 4 Mar 08:30"),
                "staff have been asked to book it",
            ),
        ),
        ("booking request", FollowUpRequest(BARE, "Tue 3 Mar 2026", "UTC", "Dr Lee", 30, ("Wed 4 Mar 08:00",))),
        ("booking request no slots", FollowUpRequest(BARE, "Tue 3 Mar 2026", "UTC", "Dr Lee", 30)),
        ("status with reminders", Status("Riverside", (), reminders=health)),
    ]


def labels() -> list[str]:
    return [name for name, _ in samples()]
