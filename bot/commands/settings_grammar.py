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

__all__ = [
    "SetCalendarLook",
    "SetFeedPattern",
    "SetOptOut",
    "SetWindow",
    "parse_calendar",
    "parse_opt",
    "parse_pattern",
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
