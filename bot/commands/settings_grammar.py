"""The settings commands of the chat grammar: opt-out, a calendar's look, a connection's window.

Declared here and listed in bot.commands.grammar's GRAMMAR, so help shows them:
- `opt out @dr-lee`, `opt in @dr-lee`
- `calendar <calendar> projection busy|initials|full`, `calendar <calendar> free on|off`
- `window <connection> <days back> <days ahead>`
- `pattern <feed> auto|service-client|client-service|title` (how a booking feed's titles name client and service)
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.commands.errors import ParseError
from bot.commands.when import DayRef, parse_day

__all__ = [
    "AddLocation",
    "FindSlots",
    "SetCalendarLook",
    "SetFeedPattern",
    "SetOptOut",
    "SetWindow",
    "ShowLocations",
    "parse_calendar",
    "parse_location",
    "parse_locations",
    "parse_opt",
    "parse_pattern",
    "parse_slots",
    "parse_window",
]

PROJECTION_WORDS = ("busy", "initials", "full")
_ON_OFF = {"on": True, "yes": True, "off": False, "no": False}


@dataclass(frozen=True, slots=True)
class SetOptOut:
    """Opt a practitioner out of sync and reminders (or back in)."""

    practitioner: str
    opted_out: bool


@dataclass(frozen=True, slots=True)
class SetCalendarLook:
    """A calendar's privacy projection or its "show as free" switch."""

    calendar: str
    projection: str | None = None
    show_as_free: bool | None = None


@dataclass(frozen=True, slots=True)
class SetWindow:
    """A connection's sync window in days back and ahead."""

    connection: str
    days_back: int
    days_ahead: int


def parse_opt(args: list[str], rest: str) -> SetOptOut:
    example = "opt out @dr-lee"
    if len(args) != 2 or args[0].lower() not in ("out", "in") or not args[1].startswith("@") or len(args[1]) < 2:
        raise ParseError("say `opt out @practitioner` or `opt in @practitioner`", example)
    if args[1].startswith("@!"):
        raise ParseError("name the practitioner by their handle, e.g. @dr-lee (`status` lists them)", example)
    return SetOptOut(args[1][1:], args[0].lower() == "out")


def parse_calendar(args: list[str], rest: str) -> SetCalendarLook:
    example = "calendar Dr Lee projection busy"
    if len(args) < 3:
        raise ParseError("say `calendar <calendar> projection busy|initials|full` or "
                         "`calendar <calendar> free on|off`", example)
    setting, value, name = args[-2].lower(), args[-1].lower(), " ".join(args[:-2])
    if setting == "projection":
        if value not in PROJECTION_WORDS:
            raise ParseError(f"{args[-1]!r} is not a projection; say busy, initials or full", example)
        return SetCalendarLook(name, projection=value)
    if setting == "free":
        if value not in _ON_OFF:
            raise ParseError("say `free on` (copies show as free) or `free off`", "calendar Dr Lee free on")
        return SetCalendarLook(name, show_as_free=_ON_OFF[value])
    raise ParseError("a calendar's `projection` or `free` can be set", example)


def parse_window(args: list[str], rest: str) -> SetWindow:
    example = "window outlook 30 180"
    if len(args) < 3:
        raise ParseError("say `window <connection> <days back> <days ahead>`", example)
    back, ahead = args[-2], args[-1]
    if not (back.isascii() and back.isdigit() and ahead.isascii() and ahead.isdigit()) or len(back + ahead) > 10:
        raise ParseError("the window is two whole numbers of days: back, then ahead", example)
    return SetWindow(" ".join(args[:-2]), int(back), int(ahead))


@dataclass(frozen=True, slots=True)
class SetFeedPattern:
    """How a booking feed's event titles name client and service (the feed's summary_pattern option)."""

    connection: str
    pattern: str


#: The choices of the ICS integration's summary_pattern option (checked again by the service).
PATTERN_WORDS = ("auto", "service-client", "client-service", "title")


def parse_pattern(args: list[str], rest: str) -> SetFeedPattern:
    example = "pattern jane client-service"
    if len(args) < 2:
        raise ParseError("say `pattern <feed> auto|service-client|client-service|title`", example)
    value = args[-1].lower()
    if value not in PATTERN_WORDS:
        raise ParseError(f"{args[-1]!r} is not a pattern; say {', '.join(PATTERN_WORDS)}", example)
    return SetFeedPattern(" ".join(args[:-1]), value)


@dataclass(frozen=True, slots=True)
class ShowLocations:
    pass


@dataclass(frozen=True, slots=True)
class AddLocation:
    name: str


def parse_locations(args: list[str], rest: str) -> ShowLocations:
    if args:
        raise ParseError(f"unexpected {' '.join(args)!r}", "locations")
    return ShowLocations()


def parse_location(args: list[str], rest: str) -> AddLocation:
    example = "location add Northside"
    if len(args) < 2 or args[0].lower() != "add":
        raise ParseError("say `location add <name>`; `locations` lists them", example)
    name = " ".join(args[1:])
    if len(name) > 200:
        raise ParseError("a location's name has at most 200 characters", example)
    return AddLocation(name)


@dataclass(frozen=True, slots=True)
class FindSlots:
    """`slots Tue afternoon reiki @dr-lee at Northside`: free times across practitioners and locations."""

    day: DayRef
    part: str | None = None
    service: str | None = None
    practitioner: str | None = None
    location: str | None = None


DAY_PARTS = ("morning", "afternoon", "evening")


def parse_slots(args: list[str], rest: str) -> FindSlots:
    example = "slots tue afternoon reiki at Northside"
    if not args:
        raise ParseError("which day? say `slots <day> [morning|afternoon|evening] [service] [at <location>]`",
                         example)
    lowered = [a.lower() for a in args]
    place = None
    if "at" in lowered:
        cut = lowered.index("at")
        place = " ".join(args[cut + 1:])
        if not place:
            raise ParseError("at which location? `locations` lists them", example)
        args = args[:cut]
    who = [a for a in args if a.startswith("@")]
    if len(who) > 1 or any(w.startswith("@!") or len(w) < 2 for w in who):
        raise ParseError("name one practitioner by their handle, e.g. @dr-lee", example)
    words = [a for a in args if not a.startswith("@")]
    if not words:
        raise ParseError("which day?", example)
    day = parse_day(words[0], example=example)
    part = words[1].lower() if len(words) > 1 and words[1].lower() in DAY_PARTS else None
    service = " ".join(words[2 if part else 1:]) or None
    if service is not None and len(service) > 100:
        raise ParseError("name the service in a few words", example)
    return FindSlots(day, part, service, who[0][1:] if who else None, place)
