"""The view dataclasses. Frozen, plain values; renderers must not reach back into the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.commands.actions import Action

__all__ = [
    "Agenda",
    "AgendaItem",
    "AppointmentDetail",
    "ConfirmCancel",
    "ConflictCard",
    "ConflictList",
    "ConnectInfo",
    "ConnectionState",
    "DoubleBookingCard",
    "Error",
    "FollowUp",
    "FollowUpRequest",
    "Help",
    "HelpEntry",
    "LeadCardView",
    "LeadList",
    "LeadSlotChoice",
    "Notice",
    "Reconnect",
    "ReminderCard",
    "ReminderHealth",
    "RescheduleForm",
    "ShiftMappingCard",
    "ShiftPersonLine",
    "ShiftPublishCard",
    "StaffCard",
    "StaffMember",
    "Status",
    "View",
    "Whoami",
    "WorkItem",
]


@dataclass(frozen=True, slots=True)
class AgendaItem:
    """One appointment line: `time_label` is e.g. "09:30–10:00" in the practice's zone."""

    appointment_id: int
    ref: str
    version: int
    start: datetime
    end: datetime
    time_label: str
    practitioner: str
    client: str
    service: str
    status: str
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One event of a person's work calendar beside the agenda: not an appointment, never stored."""

    time_label: str
    title: str
    person: str
    #: The event's short reference (`W3-1a2b3c4d`), which `track` takes.
    ref: str = ""
    #: The tracked activity's ref (`A-12`) when someone tracks this event.
    tracked: str = ""
    #: Track, or Untrack when tracked (only for people who may).
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class Agenda:
    """A day's appointments, for the practice or one practitioner, and apart from them the events of
    people's work calendars (read live when the agenda is built)."""

    title: str
    day: date
    timezone: str
    items: tuple[AgendaItem, ...]
    practitioner: str | None = None
    empty_text: str = "No appointments."
    work: tuple[WorkItem, ...] = ()
    #: Work calendars that could not be read just now (their events are missing from `work`).
    work_unavailable: tuple[str, ...] = ()
    #: The day's published shifts (the practitioner's own on their agenda; everyone's on the practice's).
    shifts: tuple[WorkItem, ...] = ()


@dataclass(frozen=True, slots=True)
class ReminderCard:
    """A reminder DM: one upcoming appointment in the practitioner's own zone.

    `item.client` is already projected for DMs (initials by default); `late` says the reminder
    went out after its planned time (the server was down or busy).
    """

    item: AgendaItem
    headline: str
    date_label: str
    timezone: str
    location: str = ""
    late: bool = False


@dataclass(frozen=True, slots=True)
class FollowUp:
    """After an appointment: did it happen? Answered with `actions` (Attended, No-show, Book follow-up).

    Once answered, `outcome` says what was recorded and by whom, and only the answers still
    meaningful remain. `notice` is the result line of the last press ("Already marked ...").
    """

    item: AgendaItem
    date_label: str
    timezone: str
    actions: tuple[Action, ...] = ()
    outcome: str = ""
    notice: str = ""
    #: Suggested follow-up slots (labels in `timezone`) once a follow-up was asked for.
    slots: tuple[str, ...] = ()
    booking_note: str = ""


@dataclass(frozen=True, slots=True)
class FollowUpRequest:
    """To staff: a practitioner asked for a follow-up visit; clinicbot cannot create bookings itself."""

    item: AgendaItem
    date_label: str
    timezone: str
    requested_by: str
    duration_minutes: int
    slots: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AppointmentDetail:
    """One appointment with everything staff may see, plus where it is synced."""

    item: AgendaItem
    date_label: str
    location: str = ""
    notes: str = ""
    #: (calendar name, state) for each calendar the appointment lives on.
    calendars: tuple[tuple[str, str], ...] = ()
    #: A result line shown above the detail ("Moved to Tue 3 Mar 15:00").
    notice: str = ""
    #: Plain information shown with the detail, not as a result ("Repeats every week ...").
    note: str = ""
    #: The client's phone number, as the booking platform has it.
    phone: str = ""


@dataclass(frozen=True, slots=True)
class RescheduleForm:
    """The reschedule form (Slack modal / Teams card): prefilled values, choices, errors, free slots."""

    appointment_id: int
    ref: str
    version: int
    summary: str
    date: date
    time: str  # "HH:MM"
    timezone: str
    practitioner_id: int | None
    #: (practitioner id, label) the appointment may move to.
    practitioners: tuple[tuple[int, str], ...]
    #: field name ("date", "time", "practitioner" or "" for the whole form) -> message
    errors: dict[str, str] = field(default_factory=dict)
    #: Next free slots, ISO start times in the practice zone, with labels.
    suggestions: tuple[tuple[datetime, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ConfirmCancel:
    """Asks before cancelling; `confirm` is the action that does it."""

    appointment_id: int
    ref: str
    version: int
    summary: str
    confirm: Action
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """One connection's health for the status view."""

    connection_id: int
    provider: str
    account: str
    status: str
    sync_enabled: bool
    last_sync: str  # display label, "never" when it never succeeded
    pending: int
    failed: int
    token_health: str  # "ok", "expired: reconnect", "error: ..."
    calendars: tuple[str, ...] = ()
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class Status:
    practice: str
    connections: tuple[ConnectionState, ...]
    pending_total: int = 0
    failed_total: int = 0
    reminders: ReminderHealth | None = None
    #: Tracked activities' files kept encrypted now, and how many the last retention run deleted.
    files_kept: int = 0
    files_purged: int = 0
    #: The last shift publish to Outlook ("" when the practice has no shift schedule).
    shift_publish: str = ""


@dataclass(frozen=True, slots=True)
class ReminderHealth:
    """Reminder deliveries for the status view (sync.notify.reminders.reminder_status)."""

    planned: int
    retrying: int
    failed: int
    dropped: int
    unknown: int
    next_due: str  # display label, "" when nothing is planned
    last_error: str = ""

    @property
    def healthy(self) -> bool:
        return not (self.retrying or self.failed or self.unknown)

    @property
    def summary(self) -> str:
        """One line: counts that matter, e.g. "12 planned · 1 retrying · 2 failed · 0 unknown"."""
        parts = [f"{self.planned} planned", f"{self.retrying} retrying", f"{self.failed} failed"]
        parts.append(f"{self.unknown} unknown")
        if self.dropped:
            parts.append(f"{self.dropped} missed while down")
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class Whoami:
    display: str
    platform: str
    practice: str
    roles: tuple[str, ...]
    practitioner: str | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class HelpEntry:
    usage: str
    summary: str
    example: str
    needs: str = ""  # the role needed, "" for everyone


@dataclass(frozen=True, slots=True)
class Help:
    entries: tuple[HelpEntry, ...]
    intro: str = ""


@dataclass(frozen=True, slots=True)
class Error:
    """Something went wrong; the message says what and `example` shows the right way."""

    message: str
    example: str = ""
    #: "input" (bad command), "forbidden", "not_found", "conflict", "unavailable"
    kind: str = "input"


@dataclass(frozen=True, slots=True)
class Notice:
    """A short result ("A-12 cancelled")."""

    text: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class Reconnect:
    """A credential expired: the button takes the admin to sign in again."""

    connection_id: int
    provider: str
    account: str
    url: str | None
    steps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """How to connect a provider: a sign-in link, or the admin steps when there is no link."""

    provider: str
    title: str
    url: str | None = None
    steps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConflictCard:
    """A mirror copy edited by hand: the booking's time against the calendar's, and the decision.

    No client details: the card may go to a staff channel; "Open appointment" shows them to
    whoever may see them. `outcome` is set once decided (or when the card is stale).
    """

    conflict_id: int
    appointment_id: int
    ref: str
    practitioner: str
    service: str
    calendar: str
    booking_time: str
    calendar_time: str
    outcome: str = ""
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class DoubleBookingCard:
    """Two appointments of one practitioner in one slot, each with its buttons."""

    conflict_id: int
    practitioner: str
    #: (item, where it was booked) for both appointments; items carry no client name.
    bookings: tuple[tuple[AgendaItem, str], ...]
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class ConflictList:
    """The open conflicts of a practice."""

    cards: tuple[ConflictCard | DoubleBookingCard, ...]
    empty_text: str = "No open conflicts: every calendar agrees with the bookings."


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A booking platform's staff member no practitioner is mapped to (a line of the staff card)."""

    calendar_id: int
    platform: str
    external_id: str
    name: str
    #: Bookings kept for them without a practitioner.
    waiting: int


@dataclass(frozen=True, slots=True)
class StaffCard:
    """The `staff` card for admins: the mappings made, and a practitioner picker for each unmapped member.

    Choosing a practitioner sends `MapStaffMember(calendar_id, practitioner_id)`.
    """

    mappings: tuple[str, ...]
    unmapped: tuple[StaffMember, ...]
    #: (practitioner id, name) the picker offers.
    practitioners: tuple[tuple[int, str], ...]
    notice: str = ""


@dataclass(frozen=True, slots=True)
class ShiftPublishCard:
    """The publishing admin's summary of an import and its publish: counts, who got nothing, a way to map them."""

    title: str
    #: What was read and what Outlook got, one line each.
    lines: tuple[str, ...]
    #: People on published shifts with no Microsoft sign-in in the identity field (they got nothing).
    unmapped: tuple[str, ...]
    #: Sign-ins Microsoft 365 does not know (their shifts wait).
    unknown: tuple[str, ...]
    identity_field: str
    #: The "Map people" button (None when there is nobody to map).
    map_action: Action | None = None


@dataclass(frozen=True, slots=True)
class ShiftPersonLine:
    """A person on the schedule's future shifts and where their shifts go."""

    name: str
    mailbox: str
    #: "field" (the scheduler's identity field), "mapped" (by an admin), "none" (nothing sent).
    how: str
    unknown: bool
    shifts: int


@dataclass(frozen=True, slots=True)
class ShiftMappingCard:
    """Who gets which shifts (admins): the identity field, each person with a practitioner picker, and each
    assignment's four flags as buttons. Every choice is an action; the card comes back updated."""

    identity_field: str
    #: The fields the identity may be in, each with the action choosing it.
    fields: tuple[tuple[str, Action], ...]
    people: tuple[ShiftPersonLine, ...]
    #: Per person (same order): (practitioner name, the action mapping the person to them).
    choices: tuple[tuple[tuple[str, Action], ...], ...]
    #: (assignment, ((flag label, on, the action flipping it), ...)).
    assignments: tuple[tuple[str, tuple[tuple[str, bool, Action], ...]], ...]
    notice: str = ""
    #: Per person (same order): the action their sign-in box sends, the typed text going in as its "u"
    #: (None: no box; only people who get nothing or whom Microsoft 365 does not know have one).
    upn_boxes: tuple[Action | None, ...] = ()
    #: The second-writer warning: calendars that already hold the shifts from another writer.
    second_writers: tuple[str, ...] = ()
    #: An error from the last choice (a sign-in Microsoft 365 does not know), shown in place of the notice.
    problem: str = ""


@dataclass(frozen=True, slots=True)
class LeadSlotChoice:
    """One free slot a lead card offers, with its Propose and Book buttons."""

    label: str
    propose: Action | None = None
    book: Action | None = None


@dataclass(frozen=True, slots=True)
class LeadCardView:
    """A lead for staff: "New lead: Reiki, prefers Tue afternoon, Dr Lee", the slots that fit, and the
    Propose / Book / Mark lost buttons. First name only: the card may go to a staff channel."""

    lead_id: int
    ref: str
    headline: str
    facts: tuple[tuple[str, str], ...]
    slots: tuple[LeadSlotChoice, ...] = ()
    actions: tuple[Action, ...] = ()
    outcome: str = ""
    #: Said when no slot fits (or the lead is closed).
    note: str = ""


@dataclass(frozen=True, slots=True)
class LeadList:
    """`leads`: the open leads, newest first."""

    cards: tuple[LeadCardView, ...]
    empty_text: str = "No open leads."


View = (
    Agenda
    | ReminderCard
    | FollowUp
    | FollowUpRequest
    | AppointmentDetail
    | RescheduleForm
    | ConfirmCancel
    | Status
    | Whoami
    | Help
    | Error
    | Notice
    | Reconnect
    | ConnectInfo
    | ConflictCard
    | DoubleBookingCard
    | ConflictList
    | StaffCard
    | ShiftPublishCard
    | ShiftMappingCard
    | LeadCardView
    | LeadList
)
