"""The one command grammar shared by Slack and Teams: text -> a typed Command, or ParseError.

Every command is declared once in `GRAMMAR` (name, usage, summary, example, role needed, parser);
help is generated from that table, so help and parser cannot drift apart.

Mentions: front ends rewrite a platform mention of a person (Slack `<@U123|ann>`, a Teams
`<at>` entity) to `@!<platform user id>` before parsing. A plain `@dr-lee` is a practitioner
handle or a chat user's display name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from bot.commands.client_notices import SetClientNotices, parse_client_notices
from bot.commands.crm import CrmSettings, parse_crm
from bot.commands.errors import ParseError
from bot.commands.settings_grammar import (
    AddLocation,
    FindSlots,
    SetCalendarLook,
    SetFeedPattern,
    SetOptOut,
    SetWindow,
    ShowLocations,
    parse_calendar,
    parse_location,
    parse_locations,
    parse_opt,
    parse_pattern,
    parse_slots,
    parse_window,
)
from bot.commands.shift_target import SetShiftTarget, parse_shift_target
from bot.commands.when import DayRef, WhenSpec, parse_day, parse_when
from sync.integrations import registry
from sync.notify.reminders import RemindError, parse_reminder_command
from sync.services.appointments import InvalidAppointmentInput, parse_ref

__all__ = [
    "CONNECT_PROVIDERS",
    "GRAMMAR",
    "ROLES",
    "CancelAppointment",
    "ChangeRole",
    "Command",
    "CommandSpec",
    "Connect",
    "Disconnect",
    "ParseError",
    "RefreshCalendars",
    "Reschedule",
    "SetMirrorEdits",
    "SetSync",
    "ShowAgenda",
    "ShowAppointment",
    "ShowConflicts",
    "ShowFiles",
    "ShowHelp",
    "ShowLeads",
    "ShowShifts",
    "ShowStatus",
    "ShowWhoami",
    "Track",
    "Untrack",
    "UserRef",
    "parse",
]

RoleName = Literal["admin", "staff", "practitioner"]
ROLES: tuple[RoleName, ...] = ("admin", "staff", "practitioner")
MAX_TEXT = 1000

class _ConnectWords(Mapping[str, str]):
    """What people type -> integration name, asked of the registry (names and chat aliases) when read."""

    def _words(self) -> dict[str, str]:
        return {word: i.name for i in registry.integrations() for word in i.words}

    def __getitem__(self, word: str) -> str:
        return self._words()[word]

    def __iter__(self) -> Iterator[str]:
        return iter(self._words())

    def __len__(self) -> int:
        return len(self._words())


#: what people type -> integration name in sync.integrations.registry
CONNECT_PROVIDERS: Mapping[str, str] = _ConnectWords()


@dataclass(frozen=True, slots=True)
class UserRef:
    """A person named in a command: a platform user id (from a mention) or a name/handle."""

    platform_user_id: str | None = None
    name: str | None = None

    @classmethod
    def from_token(cls, tok: str) -> UserRef:
        if tok.startswith("@!") and len(tok) > 2:
            return cls(platform_user_id=tok[2:])
        if tok.startswith("@") and len(tok) > 1:
            return cls(name=tok[1:])
        raise ParseError(f"{tok!r} is not a person; mention them with @", "role grant staff @alex")

    def __str__(self) -> str:
        return f"@{self.name}" if self.name else f"user {self.platform_user_id}"


@dataclass(frozen=True, slots=True)
class ShowHelp:
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class ShowAgenda:
    day: DayRef
    day_text: str
    practitioner: UserRef | None = None
    #: Only the appointments at this location (its name or another name of it).
    location: str | None = None


@dataclass(frozen=True, slots=True)
class ShowShifts:
    """Who is on shift on a day (a published shift schedule)."""

    day: DayRef
    day_text: str


@dataclass(frozen=True, slots=True)
class ShowAppointment:
    appointment_id: int


@dataclass(frozen=True, slots=True)
class Reschedule:
    appointment_id: int
    when: WhenSpec


@dataclass(frozen=True, slots=True)
class CancelAppointment:
    appointment_id: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SetSync:
    enabled: bool
    #: None: the whole practice; a calendar/provider name; or a practitioner (UserRef)
    target: str | UserRef | None = None


@dataclass(frozen=True, slots=True)
class Connect:
    provider: str
    typed: str
    #: The connect options typed after it (`connect calendly --routing-forms on`), as (name, value) pairs;
    #: checked against the integration's own options when the sign-in link is made.
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Disconnect an account: its webhook subscriptions deleted at the platform, the connection forgotten."""

    connection: str


@dataclass(frozen=True, slots=True)
class RefreshCalendars:
    """Find a connection's calendars again (its id, integration or account, as `status` shows them)."""

    connection: str


@dataclass(frozen=True, slots=True)
class ShowStatus:
    pass


@dataclass(frozen=True, slots=True)
class MapStaff:
    """`staff map <integration> <staff id> @practitioner`, `staff unmap <integration> <staff id>`, `staff`."""

    action: str  # "map" | "unmap" | "list"
    integration: str = ""
    external_id: str = ""
    who: UserRef | None = None


@dataclass(frozen=True, slots=True)
class ShowWhoami:
    pass


@dataclass(frozen=True, slots=True)
class ShowConflicts:
    pass


@dataclass(frozen=True, slots=True)
class ChangeRole:
    grant: bool
    role: RoleName
    user: UserRef
    #: For the practitioner role: which practitioner the person is (a handle).
    practitioner: UserRef | None = None


@dataclass(frozen=True, slots=True)
class SetReminders:
    #: The words after `remind`, already validated by sync.notify.reminders.parse_reminder_command.
    text: str


@dataclass(frozen=True, slots=True)
class SetMirrorEdits:
    """`mirror-edits [card|follow|keep]`: show or set what a hand edit of a calendar copy does."""

    mode: str | None = None


@dataclass(frozen=True, slots=True)
class Track:
    """`track W3-1a2b3c4d`: make a work-calendar event a tracked activity."""

    event: str


@dataclass(frozen=True, slots=True)
class Untrack:
    """`untrack W3-1a2b3c4d` or `untrack A-12`: stop tracking it (the calendar event stays)."""

    event: str


@dataclass(frozen=True, slots=True)
class ShowFiles:
    """`files A-12`: links to the files attached to a tracked activity's calendar event."""

    appointment_id: int


@dataclass(frozen=True, slots=True)
class ShowLeads:
    """`leads [L-12]`: the open leads, or one lead with the free slots that fit its preference."""

    lead_id: int | None = None


Command = (
    ShowHelp
    | ShowAgenda
    | ShowShifts
    | ShowAppointment
    | Reschedule
    | CancelAppointment
    | SetSync
    | Connect
    | RefreshCalendars
    | Disconnect
    | ShowStatus
    | MapStaff
    | ShowWhoami
    | ChangeRole
    | SetReminders
    | ShowConflicts
    | SetMirrorEdits
    | SetOptOut
    | SetCalendarLook
    | SetWindow
    | SetFeedPattern
    | ShowLocations
    | AddLocation
    | FindSlots
    | Track
    | Untrack
    | ShowFiles
    | SetClientNotices
    | CrmSettings
    | ShowLeads
    | SetShiftTarget
)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    usage: str
    summary: str
    example: str
    needs: str
    parse: Callable[[list[str], str], Command]
    aliases: tuple[str, ...] = ()


def _appointment_id(tok: str, example: str) -> int:
    try:
        return parse_ref(tok)
    except InvalidAppointmentInput:
        raise ParseError(f"{tok!r} is not an appointment id; ids look like A-1042", example) from None


def _typed_id(args: list[str]) -> int | None:
    """The appointment id a command's first word names, if it is one."""
    try:
        return parse_ref(args[0]) if args else None
    except InvalidAppointmentInput:
        return None


def _no_more(args: list[str], used: int, example: str) -> None:
    if len(args) > used:
        raise ParseError(f"unexpected {' '.join(args[used:])!r}", example)


def _p_help(args: list[str], rest: str) -> Command:
    return ShowHelp(topic=args[0].lower() if args else None)


def _p_agenda(args: list[str], rest: str) -> Command:
    example = "tomorrow @dr-lee at Northside"
    place: str | None = None
    lowered = [a.lower() for a in args]
    if "at" in lowered:  # `today @dr-lee at Northside`: the location is everything after "at"
        cut = lowered.index("at")
        place = " ".join(args[cut + 1:])
        if not place:
            raise ParseError("at which location? `locations` lists them", example)
        args = args[:cut]
    who = [a for a in args if a.startswith("@")]
    words = [a for a in args if not a.startswith("@")]
    if len(who) > 1:
        raise ParseError("name one practitioner", example)
    day_text = " ".join(words) or "today"
    day = parse_day(day_text, example=example)
    return ShowAgenda(day=day, day_text=day_text, practitioner=UserRef.from_token(who[0]) if who else None,
                      location=place)


def _p_shifts(args: list[str], rest: str) -> Command:
    example = "shifts tomorrow"
    day_text = " ".join(args) or "today"
    return ShowShifts(day=parse_day(day_text, example=example), day_text=day_text)


def _p_appointment(args: list[str], rest: str) -> Command:
    example = "appointment A-1042"
    if not args:
        raise ParseError("which appointment?", example)
    _no_more(args, 1, example)
    return ShowAppointment(_appointment_id(args[0], example))


def _p_reschedule(args: list[str], rest: str) -> Command:
    example = "reschedule A-1042 tomorrow 3pm"
    if not args:
        raise ParseError("which appointment, and when to?", example)
    appt = _appointment_id(args[0], example)
    if len(args) < 2:
        raise ParseError(f"when should A-{appt} move to?", example)
    return Reschedule(appt, parse_when(" ".join(args[1:]), example=example))


def _p_cancel(args: list[str], rest: str) -> Command:
    example = "cancel A-1042 patient sick"
    if not args:
        raise ParseError("which appointment?", example)
    appt = _appointment_id(args[0], example)
    reason = rest.split(None, 1)[1] if len(rest.split(None, 1)) > 1 else ""
    if len(reason) > 500:
        raise ParseError("keep the reason under 500 characters", example)
    return CancelAppointment(appt, reason.strip())


def _p_sync(args: list[str], rest: str) -> Command:
    example = "sync off outlook"
    if not args or args[0].lower() not in ("on", "off"):
        raise ParseError("say `sync on` or `sync off`, optionally with a calendar or @practitioner", example)
    target_words = args[1:]
    if not target_words:
        return SetSync(args[0].lower() == "on")
    if target_words[0].startswith("@"):
        _no_more(target_words, 1, example)
        return SetSync(args[0].lower() == "on", UserRef.from_token(target_words[0]))
    return SetSync(args[0].lower() == "on", " ".join(target_words))


def _p_connect(args: list[str], rest: str) -> Command:
    example = "connect google"
    words = dict(CONNECT_PROVIDERS)
    known = ", ".join(sorted(words))
    if not args:
        raise ParseError(f"connect what? one of: {known}", example)
    typed = args[0].lower()
    if typed not in words:
        raise ParseError(f"I can't connect {args[0]!r}; try one of: {known}", example)
    options: list[tuple[str, str]] = []
    rest_words = args[1:]
    while rest_words:
        flag = rest_words[0]
        if not flag.startswith("--") or len(flag) < 3:
            raise ParseError(f"{flag!r} is not an option; options look like `--routing-forms on`",
                             "connect calendly --routing-forms on")
        if len(rest_words) < 2 or rest_words[1].startswith("--"):
            raise ParseError(f"{flag} needs a value, e.g. `{flag} on`", "connect calendly --routing-forms on")
        options.append((flag[2:].lower().replace("-", "_"), rest_words[1]))
        rest_words = rest_words[2:]
    return Connect(words[typed], typed, tuple(options))


def _p_refresh(args: list[str], rest: str) -> Command:
    example = "refresh 3"
    if not args:
        raise ParseError("which connection? `status` lists them", example)
    return RefreshCalendars(" ".join(args))


def _p_disconnect(args: list[str], rest: str) -> Command:
    example = "disconnect 3"
    if not args:
        raise ParseError("which connection? `status` lists them", example)
    return Disconnect(" ".join(args))


def _p_track(args: list[str], rest: str) -> Command:
    example = "track W3-1a2b3c4d"
    if not args:
        raise ParseError("which event? `today` lists the work events with their references", example)
    _no_more(args, 1, example)
    return Track(args[0])


def _p_untrack(args: list[str], rest: str) -> Command:
    example = "untrack W3-1a2b3c4d"
    if not args:
        raise ParseError("which event? give its reference (W3-1a2b3c4d) or the activity (A-12)", example)
    _no_more(args, 1, example)
    return Untrack(args[0])


def _p_files(args: list[str], rest: str) -> Command:
    example = "files A-12"
    if not args:
        raise ParseError("which activity? give its id, like A-12", example)
    _no_more(args, 1, example)
    return ShowFiles(_appointment_id(args[0], example))


def _p_status(args: list[str], rest: str) -> Command:
    _no_more(args, 0, "status")
    return ShowStatus()


def _p_staff(args: list[str], rest: str) -> Command:
    example = "staff map square TMabc123 @dr-lee"
    if not args or args[0].lower() == "list":
        _no_more(args, 1 if args else 0, "staff")
        return MapStaff("list")
    action = args[0].lower()
    if action == "map":
        if len(args) != 4 or not args[3].startswith("@"):
            raise ParseError("say `staff map <platform> <staff id> @practitioner`", example)
        return MapStaff("map", args[1].lower(), args[2], UserRef.from_token(args[3]))
    if action == "unmap":
        if len(args) != 3:
            raise ParseError("say `staff unmap <platform> <staff id>`", "staff unmap square TMabc123")
        return MapStaff("unmap", args[1].lower(), args[2])
    raise ParseError("say `staff`, `staff map ...` or `staff unmap ...`", example)


def _p_remind(args: list[str], rest: str) -> Command:
    try:
        parse_reminder_command(rest)
    except RemindError as exc:
        raise ParseError(str(exc), "remind 24h 1h before") from None
    return SetReminders(rest)


def _p_conflicts(args: list[str], rest: str) -> Command:
    _no_more(args, 0, "conflicts")
    return ShowConflicts()


def _p_leads(args: list[str], rest: str) -> Command:
    example = "leads L-12"
    if not args:
        return ShowLeads()
    _no_more(args, 1, example)
    m = re.fullmatch(r"L-?(\d{1,9})", args[0], re.IGNORECASE)
    if m is None:
        raise ParseError(f"{args[0]!r} is not a lead id; lead ids look like L-12", example)
    return ShowLeads(int(m.group(1)))


def _p_mirror_edits(args: list[str], rest: str) -> Command:
    example = "mirror-edits follow"
    if not args:
        return SetMirrorEdits()
    _no_more(args, 1, example)
    mode = args[0].lower()
    if mode not in ("card", "follow", "keep"):
        raise ParseError(f"{args[0]!r} is not a choice; say card, follow or keep", example)
    return SetMirrorEdits(mode)


def _p_whoami(args: list[str], rest: str) -> Command:
    _no_more(args, 0, "whoami")
    return ShowWhoami()


def _p_role(args: list[str], rest: str) -> Command:
    example = "role grant staff @alex"
    if len(args) < 3 or args[0].lower() not in ("grant", "revoke"):
        raise ParseError("say `role grant` or `role revoke`, a role and a person", example)
    role = args[1].lower()
    if role not in ROLES:
        raise ParseError(f"{args[1]!r} is not a role; roles are {', '.join(ROLES)}", example)
    person = args[2:]
    practitioner = None
    if role == "practitioner" and args[0].lower() == "grant" and len(person) > 1 and person[-1].startswith("@"):
        practitioner = UserRef.from_token(person.pop())
    if person[0].startswith("@!"):  # a real mention: one token
        _no_more(person, 1, example)
        user = UserRef.from_token(person[0])
    else:
        # A name typed as text ("Alex Wilber", "@Alex Wilber"): Teams users rarely pick a mention.
        # Raw platform markup (`<@U123|ann>`) is refused, never half-read; so is a second @person.
        if any(c in tok for tok in person for c in "<>|"):
            raise ParseError(f"{' '.join(person)!r} is not a person; mention them with @", example)
        if any(tok.startswith("@") for tok in person[1:]):
            raise ParseError(f"unexpected {' '.join(person[1:])!r}", example)
        user = UserRef(name=" ".join(person).lstrip("@"))
    return ChangeRole(args[0].lower() == "grant", role, user, practitioner)


GRAMMAR: tuple[CommandSpec, ...] = (
    CommandSpec("help", "help", "what I can do", "help", "", _p_help),
    CommandSpec(
        "today",
        "today|tomorrow|<date> [@practitioner] [at <location>]",
        "the day's appointments",
        "tomorrow @dr-lee at Northside",
        "",
        _p_agenda,
        aliases=("agenda",),
    ),
    CommandSpec(
        "appointment",
        "appointment <id>",
        "one appointment in detail",
        "appointment A-1042",
        "",
        _p_appointment,
        aliases=("appt", "show"),
    ),
    CommandSpec(
        "reschedule",
        "reschedule <id> <when>",
        "move an appointment (a day, a time, or ISO 8601)",
        "reschedule A-1042 tomorrow 3pm",
        "staff or its practitioner",
        _p_reschedule,
        aliases=("move",),
    ),
    CommandSpec(
        "cancel",
        "cancel <id> [reason]",
        "cancel an appointment",
        "cancel A-1042 patient sick",
        "staff or its practitioner",
        _p_cancel,
    ),
    CommandSpec(
        "sync",
        "sync on|off [calendar|@practitioner]",
        "turn calendar sync on or off",
        "sync off outlook",
        "admin, or a practitioner for their own",
        _p_sync,
    ),
    CommandSpec(
        "connect",
        "connect <provider>",
        "connect a calendar (`connect` alone lists the kinds this server has)",
        "connect google",
        "admin, or a practitioner for their own",
        _p_connect,
    ),
    CommandSpec("status", "status", "sync health of every connection", "status", "staff", _p_status),
    CommandSpec(
        "remind",
        "remind [24h 1h before | on | off | agenda 07:30 | quiet 20:00-07:00 | tz <zone>]",
        "your reminders, daily agenda and quiet hours",
        "remind 24h 1h before",
        "practitioner",
        _p_remind,
        aliases=("reminders",),
    ),
    CommandSpec(
        "conflicts",
        "conflicts",
        "calendar conflicts and double bookings waiting for a decision",
        "conflicts",
        "staff",
        _p_conflicts,
    ),
    CommandSpec("whoami", "whoami", "who I think you are, and your roles", "whoami", "", _p_whoami),
    CommandSpec(
        "role",
        "role grant|revoke <role> @user",
        "give or take admin, staff or practitioner",
        "role grant staff @alex",
        "admin",
        _p_role,
    ),
    CommandSpec(
        "refresh",
        "refresh <connection>",
        "find a connection's calendars again (new ones are added; roles stay)",
        "refresh 3",
        "admin",
        _p_refresh,
    ),
    CommandSpec(
        "disconnect",
        "disconnect <connection>",
        "disconnect an account: its webhooks are deleted at the platform; its bookings stay in the record",
        "disconnect 3",
        "admin",
        _p_disconnect,
    ),
    CommandSpec(
        "staff",
        "staff [map <platform> <staff id> @practitioner | unmap <platform> <staff id>]",
        "which practitioner a booking platform's staff member is (`staff` lists them and the unassigned)",
        "staff map square TMabc123 @dr-lee",
        "admin",
        _p_staff,
    ),
    CommandSpec(
        "opt",
        "opt out|in @practitioner",
        "leave a practitioner out of sync and reminders, or bring them back",
        "opt out @dr-lee",
        "admin",
        parse_opt,
    ),
    CommandSpec(
        "calendar",
        "calendar <calendar> projection busy|initials|full | free on|off",
        "how clinicbot's copies look on a calendar (the copies there are rewritten)",
        "calendar Dr Lee projection busy",
        "admin",
        parse_calendar,
    ),
    CommandSpec(
        "window",
        "window <connection> <days back> <days ahead>",
        "how far back and ahead a connection syncs",
        "window outlook 30 180",
        "admin",
        parse_window,
    ),
    CommandSpec(
        "pattern",
        "pattern <feed> auto|service-client|client-service|title",
        "how a booking feed's titles name client and service (\"Physio - Jane Roe\", \"Jane Roe (Physio)\")",
        "pattern jane client-service",
        "admin",
        parse_pattern,
    ),
    CommandSpec("locations", "locations", "the practice's locations", "locations", "staff", parse_locations),
    CommandSpec(
        "slots",
        "slots <day> [morning|afternoon|evening] [service] [@practitioner] [at <location>]",
        "free times across practitioners and locations",
        "slots tue afternoon reiki at Northside",
        "staff",
        parse_slots,
        aliases=("free",),
    ),
    CommandSpec(
        "location",
        "location add <name>",
        "add a location (bookings whose platform names it are placed there)",
        "location add Northside",
        "admin",
        parse_location,
    ),
    CommandSpec(
        "shifts",
        "shifts [today|tomorrow|<date>]",
        "who is on shift (the published shift schedule)",
        "shifts tomorrow",
        "",
        _p_shifts,
        aliases=("oncall", "rota"),
    ),
    CommandSpec(
        "mirror-edits",
        "mirror-edits [card|follow|keep]",
        "what a hand edit of a calendar copy does: a card for staff, follow the calendar, or keep the booking",
        "mirror-edits follow",
        "admin",
        _p_mirror_edits,
        aliases=("calendar-edits",),
    ),
    CommandSpec(
        "track",
        "track <work event>",
        "make an event of a work calendar a tracked activity (agenda, reminders, synced both ways)",
        "track W3-1a2b3c4d",
        "",
        _p_track,
    ),
    CommandSpec(
        "untrack",
        "untrack <work event|A-id>",
        "stop tracking a work event (the event stays in its calendar)",
        "untrack W3-1a2b3c4d",
        "",
        _p_untrack,
    ),
    CommandSpec(
        "files",
        "files <A-id>",
        "links to the files attached to a tracked activity's calendar event",
        "files A-12",
        "",
        _p_files,
        aliases=("attachments",),
    ),
    CommandSpec(
        "client-notices",
        "client-notices [on|off | channel email|sms|both | new|reminders|details on|off | quiet 21:00-08:00|off"
        " | template <kind> <text>|reset]",
        "what clients are told of their visits, by email or text: channels, reminders, quiet hours, templates",
        "client-notices channel both",
        "staff to see, admin to change",
        parse_client_notices,
        aliases=("client-messages",),
    ),
    CommandSpec(
        "leads",
        "leads [L-12]",
        "prospective clients from forms; one lead with the free slots that fit its preferred times",
        "leads L-12",
        "staff",
        _p_leads,
        aliases=("lead",),
    ),
    CommandSpec(
        "crm",
        "crm [log on|off <connection>]",
        "visits logged to the practice's CRM (HubSpot, Salesforce): each connection's logging, last write, failures",
        "crm log off hubspot",
        "admin",
        parse_crm,
    ),
    CommandSpec(
        "shift-target",
        "shift-target [outlook|teams|both] [team <team id>] [as <owner UPN>]",
        "where published shifts go: Outlook calendars, a team's Teams Shifts schedule, or both",
        "shift-target both",
        "staff to see, admin to change",
        parse_shift_target,
        aliases=("shifts-target",),
    ),
)
_DAY_WORDS = (
    "today",
    "tomorrow",
    "yesterday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
_BY_WORD = {w: spec for spec in GRAMMAR for w in (spec.name, *spec.aliases)}


def _split(text: str) -> tuple[str, list[str], str]:
    """(verb, argument words, the text after the verb)."""
    words = text.split()
    rest = text.split(None, 1)
    return words[0], words[1:], rest[1] if len(rest) > 1 else ""


def parse(text: str) -> Command:
    """Parse one command line (without the `/clinic` prefix). Raises ParseError on bad input."""
    if len(text) > MAX_TEXT:
        raise ParseError(f"that is too long ({len(text)} characters); commands are short", "today")
    text = " ".join(text.replace("\u00a0", " ").split())
    if not text:
        return ShowHelp()
    verb, args, rest = _split(text)
    spec = _BY_WORD.get(verb.lower())
    if spec is not None:
        try:
            return spec.parse(args, rest)
        except ParseError as exc:
            typed_id = _typed_id(args)
            raise (exc.about(typed_id) if typed_id is not None else exc) from None
    # A bare day ("tomorrow", "tue @dr-lee", "2026-03-04") is the agenda.
    try:
        return _p_agenda([verb, *args], text)
    except ParseError:
        pass
    close = difflib.get_close_matches(verb.lower(), [*_BY_WORD, *_DAY_WORDS], n=1, cutoff=0.6)
    if close and close[0] in _DAY_WORDS:
        raise ParseError(f"I don't know {verb!r}; did you mean `{close[0]}`?", close[0])
    if close:
        spec = _BY_WORD[close[0]]
        raise ParseError(f"I don't know {verb!r}; did you mean `{spec.name}`?", spec.example)
    raise ParseError(f"I don't know {verb!r}; `help` lists what I can do", "today")
