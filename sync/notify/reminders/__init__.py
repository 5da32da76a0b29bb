"""Reminders, the daily agenda and follow-ups: planned into the ReminderLedger, sent by one dispatcher.

- `prefs`     effective settings (built-in, practice, practitioner)
- `timing`    when things fire: the DST and quiet-hours rules
- `commands`  the `remind ...` chat command (`apply_reminder_command`)
- `planner`   ledger rows from appointments; the event subscriber that moves/removes them
- `dispatch`  claim, re-read, send, retry; late and dropped rows; crash recovery
- `followup`  Attended / No-show / Book follow-up answers
- `status`    counts for the `status` command
The APScheduler side (leader lock, job store, periodic jobs) is `sync.jobs.scheduler`.
"""

from sync.notify.reminders.commands import RemindError, apply_reminder_command, parse_reminder_command
from sync.notify.reminders.dispatch import DeliveryCheck, Dispatcher, DispatchReport
from sync.notify.reminders.followup import FollowupOutcome, answer_followup
from sync.notify.reminders.planner import ReminderSubscriber, plan_upcoming, replan_appointment, replan_practitioner
from sync.notify.reminders.prefs import ReminderPrefs, effective_prefs
from sync.notify.reminders.status import ReminderStatus, reminder_status

__all__ = [
    "DeliveryCheck",
    "DispatchReport",
    "Dispatcher",
    "FollowupOutcome",
    "RemindError",
    "ReminderPrefs",
    "ReminderStatus",
    "ReminderSubscriber",
    "answer_followup",
    "apply_reminder_command",
    "effective_prefs",
    "parse_reminder_command",
    "plan_upcoming",
    "reminder_status",
    "replan_appointment",
    "replan_practitioner",
]
