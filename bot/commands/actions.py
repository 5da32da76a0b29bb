"""Card actions (button presses and form submits), typed, with one compact wire form.

A renderer puts `encode(action)` into a button (Slack `action_id` + `value`, Teams
`Action.Execute` verb + data); the front end hands what comes back to `decode`, which refuses
anything malformed with a ParseError. Permissions are re-checked by the handlers on every press:
a button is not a capability.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime
from typing import Any

from bot.commands.errors import ParseError

__all__ = [
    "ACTION_IDS",
    "AcceptCalendar",
    "Action",
    "AskCancel",
    "BookFollowUp",
    "BookLead",
    "CancelConfirmed",
    "KeepBooking",
    "MapShiftPerson",
    "MapShiftUpn",
    "MapStaffMember",
    "MarkAttended",
    "MarkLeadLost",
    "MarkNoShow",
    "OpenReschedule",
    "OpenShiftMapping",
    "PickSlot",
    "ProposeLead",
    "SetShiftField",
    "SetShiftFlag",
    "ShowDetails",
    "SubmitReschedule",
    "TrackEvent",
    "UntrackEvent",
    "decode",
    "encode",
]


@dataclass(frozen=True, slots=True)
class OpenReschedule:
    """The agenda's Reschedule button: open the form."""

    appointment_id: int
    version: int


@dataclass(frozen=True, slots=True)
class SubmitReschedule:
    """The reschedule form submitted (date "YYYY-MM-DD", time "HH:MM", in the practice zone)."""

    appointment_id: int
    version: int
    day: date | None = None
    time: str | None = None
    practitioner_id: int | None = None


@dataclass(frozen=True, slots=True)
class PickSlot:
    """One of the suggested free slots, chosen."""

    appointment_id: int
    version: int
    start: datetime
    practitioner_id: int | None = None


@dataclass(frozen=True, slots=True)
class AskCancel:
    """The agenda's Cancel button: ask first."""

    appointment_id: int
    version: int


@dataclass(frozen=True, slots=True)
class CancelConfirmed:
    appointment_id: int
    version: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ShowDetails:
    """Details of one appointment; `start` picks one visit of a repeating series (they share its id)."""

    appointment_id: int
    start: datetime | None = None


@dataclass(frozen=True, slots=True)
class MarkAttended:
    """The follow-up DM's Attended button: the visit happened."""

    appointment_id: int


@dataclass(frozen=True, slots=True)
class MarkNoShow:
    """The follow-up DM's No-show button: the client did not come."""

    appointment_id: int


@dataclass(frozen=True, slots=True)
class BookFollowUp:
    """The follow-up DM's Book follow-up button: find slots and ask staff to book the next visit."""

    appointment_id: int


@dataclass(frozen=True, slots=True)
class KeepBooking:
    """A conflict card's "Keep the booking": put the canonical record back on the mirror copy."""

    conflict_id: int


@dataclass(frozen=True, slots=True)
class AcceptCalendar:
    """A conflict card's "Accept the calendar's time": reschedule at the source to the copy's time."""

    conflict_id: int


@dataclass(frozen=True, slots=True)
class MapStaffMember:
    """The staff card's picker: this booking calendar's staff member is that practitioner."""

    calendar_id: int
    practitioner_id: int | None = None


@dataclass(frozen=True, slots=True)
class OpenShiftMapping:
    """The publish summary's "Map people": open who-gets-which-shifts."""


@dataclass(frozen=True, slots=True)
class SetShiftField:
    """The mapping card: the scheduler's person field that holds the Microsoft sign-in."""

    field: str


@dataclass(frozen=True, slots=True)
class MapShiftPerson:
    """The mapping card's picker: this person's shifts go to that practitioner (None: undo the mapping)."""

    person: str
    practitioner_id: int | None = None


@dataclass(frozen=True, slots=True)
class MapShiftUpn:
    """The mapping card's sign-in box: this person's shifts go to the Microsoft sign-in typed there."""

    person: str
    upn: str


@dataclass(frozen=True, slots=True)
class SetShiftFlag:
    """The mapping card's flag buttons: set one of an assignment's four flags ("on" or "off")."""

    assignment: str
    flag: str
    state: str


@dataclass(frozen=True, slots=True)
class TrackEvent:
    """A work event's Track button: make it a tracked activity (`day` is the agenda's, to find it fast)."""

    event: str
    day: date | None = None


@dataclass(frozen=True, slots=True)
class UntrackEvent:
    """A tracked work event's Untrack button (`event`: its W-reference or the activity's A-ref)."""

    event: str


@dataclass(frozen=True, slots=True)
class ProposeLead:
    """A lead card's Propose: email the client this slot with a confirm link."""

    lead_id: int
    practitioner_id: int
    start: datetime


@dataclass(frozen=True, slots=True)
class BookLead:
    """A lead card's Book: book the lead into this slot directly (staff agreed it with the client)."""

    lead_id: int
    practitioner_id: int
    start: datetime


@dataclass(frozen=True, slots=True)
class MarkLeadLost:
    """A lead card's Mark lost."""

    lead_id: int


Action = (
    OpenReschedule | SubmitReschedule | PickSlot | AskCancel | CancelConfirmed | ShowDetails | KeepBooking
    | AcceptCalendar | MarkAttended | MarkNoShow | BookFollowUp | MapStaffMember | OpenShiftMapping
    | SetShiftField | MapShiftPerson | SetShiftFlag | MapShiftUpn
    | TrackEvent | UntrackEvent | ProposeLead | BookLead | MarkLeadLost
)

#: wire id -> action class. Front ends prefix these ("clinic.") as they see fit.
ACTION_IDS: dict[str, type[Any]] = {
    "reschedule": OpenReschedule,
    "reschedule_submit": SubmitReschedule,
    "pick_slot": PickSlot,
    "cancel": AskCancel,
    "cancel_confirm": CancelConfirmed,
    "details": ShowDetails,
    "followup_attended": MarkAttended,
    "followup_no_show": MarkNoShow,
    "followup_book": BookFollowUp,
    "conflict_keep": KeepBooking,
    "conflict_accept": AcceptCalendar,
    "staff_map": MapStaffMember,
    "shifts_map": OpenShiftMapping,
    "shifts_field": SetShiftField,
    "shifts_person": MapShiftPerson,
    "shifts_flag": SetShiftFlag,
    "shifts_upn": MapShiftUpn,
    "track": TrackEvent,
    "untrack": UntrackEvent,
    "lead_propose": ProposeLead,
    "lead_book": BookLead,
    "lead_lost": MarkLeadLost,
}
_ID_OF = {cls: name for name, cls in ACTION_IDS.items()}
#: attribute -> its key in a button's value (one letter: Slack caps a value at 2,000 characters). An action's
#: fields are its dataclass fields; one without a default must be in the value.
_KEYS = {
    "appointment_id": "a", "version": "v", "day": "d", "time": "t", "practitioner_id": "p", "start": "s",
    "reason": "r", "conflict_id": "c", "calendar_id": "c", "field": "f", "person": "n", "assignment": "n",
    "flag": "f", "state": "s", "upn": "u", "event": "e", "lead_id": "l",
}
_FIELDS: dict[type[Any], tuple[tuple[str, str, bool], ...]] = {
    # (wire key, attribute, required)
    cls: tuple((_KEYS[f.name], f.name, f.default is MISSING) for f in fields(cls)) for cls in ACTION_IDS.values()
}
_MAX_VALUE = 2000  # Slack's cap on a button value


def encode(action: Action) -> tuple[str, str]:
    """(action id, compact JSON value) for a button."""
    doc: dict[str, Any] = {}
    for key, attr, _ in _FIELDS[type(action)]:
        value = getattr(action, attr)
        if value is None or value == "":
            continue
        doc[key] = value.isoformat() if isinstance(value, (date, datetime)) else value
    return _ID_OF[type(action)], json.dumps(doc, separators=(",", ":"))


def _bad(why: str) -> ParseError:
    return ParseError(f"this button's data is not valid ({why}); run the command again", "today")


def _ascii_digits(text: str) -> bool:
    """Only 0-9: str.isdigit() also accepts "²" and other scripts' digits, which int() refuses."""
    return text.isascii() and text.isdigit()


def _convert(attr: str, raw: Any) -> Any:
    if attr in ("appointment_id", "version", "practitioner_id", "conflict_id", "calendar_id", "lead_id"):
        text = str(raw)
        if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not _ascii_digits(text) or len(text) > 12:
            raise _bad(f"{attr} must be a whole number")
        return int(raw)
    if attr == "day":
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            raise _bad("date must be YYYY-MM-DD") from None
    if attr == "start":
        try:
            value = datetime.fromisoformat(str(raw))
        except ValueError:
            raise _bad("start must be an ISO time") from None
        if value.tzinfo is None:
            raise _bad("start needs an offset")
        return value
    if attr == "time":
        text = str(raw)
        parts = text.split(":")
        if (
            len(parts) != 2
            or not all(_ascii_digits(p) and len(p) == 2 for p in parts)
            or int(parts[0]) > 23
            or int(parts[1]) > 59
        ):
            raise _bad("time must be HH:MM")
        return text
    if not isinstance(raw, str):
        raise _bad(f"{attr} must be text")
    if attr == "event" and (len(raw) > 40 or not raw.isascii()):
        raise _bad("event must be a short reference")
    return raw[:500]


def decode(action_id: str, value: str | dict[str, Any] | None) -> Action:
    """Rebuild an action from its id and value; ParseError for anything unknown or malformed."""
    cls = ACTION_IDS.get(action_id)
    if cls is None:
        raise ParseError(f"unknown button {action_id[:40]!r}; run the command again", "today")
    if isinstance(value, str):
        if len(value) > _MAX_VALUE:
            raise _bad("too long")
        try:
            doc = json.loads(value) if value else {}
        except (ValueError, RecursionError):  # RecursionError: 2,000 bytes of "[[[[" nest too deep
            raise _bad("not JSON") from None
    else:
        doc = value or {}
    if not isinstance(doc, dict):
        raise _bad("not an object")
    kwargs: dict[str, Any] = {}
    for key, attr, required in _FIELDS[cls]:
        raw = doc.get(key, doc.get(attr))
        if raw is None or raw == "":
            if required:
                raise _bad(f"{attr} is missing")
            kwargs[attr] = "" if attr == "reason" else None
            continue
        kwargs[attr] = _convert(attr, raw)
    action: Action = cls(**kwargs)
    return action
