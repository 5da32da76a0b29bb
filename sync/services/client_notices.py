"""A practice's settings for messages to its clients, as chat and the CLI show and change them.

They live in the practice's settings (each change audited, before and after):
- `client_notices` on|off: clients are told at all;
- `client_channels` email|sms|both: how (texts need the Twilio integration set up);
- `client_notices_new`: also when a visit is booked; `client_reminders`: a reminder 24 h before;
- `client_quiet` "21:00-08:00": nothing leaves in those hours, it waits for their end;
- `client_details`: messages name the service (never the notes) only when this is on;
- `client_language` en|es;
- `client_phone_prefix` "+44": the country code a client's number written without one is read in
  ("07700 900123" is +447700900123); without it such numbers get no text (shown as failed);
- `client_templates`: the practice's own text per kind (booked, moved, cancelled, reminder), with
  placeholders checked when set, so an unknown `{placeholder}` is refused then, never at sending time.

`parse_change` reads the words after `client-notices` (chat) or `clinicbot clients settings` (CLI):
one parser for both front ends.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from sync.integrations import registry
from sync.runtime.core import Core
from sync.runtime.settings import ConfigError
from sync.services.errors import Invalid, NotFound
from sync.services.practices import practice_by_name
from sync.store import audit
from sync.store.model import ClientNotice, Practice

__all__ = [
    "CHANNELS",
    "KINDS",
    "LANGUAGES",
    "MAX_TEMPLATE",
    "PLACEHOLDERS",
    "Change",
    "ClientNoticeSettings",
    "change_client_notices",
    "check_template",
    "client_message_health",
    "client_notice_settings",
    "configured_channels",
    "notice_settings",
    "parse_change",
    "parse_quiet",
    "practice_id_named",
    "quiet_until",
    "render_template",
]

log = logging.getLogger("clinicbot.clients")

CHANNELS = ("email", "sms", "both")
KINDS = ("booked", "moved", "cancelled", "reminder")
LANGUAGES = ("en", "es")
#: What a practice's template may name; service is empty unless the practice turned details on.
PLACEHOLDERS = ("practice", "practitioner", "client", "date", "time", "zone", "location", "service")
MAX_TEMPLATE = 480
_KIND_WORDS = {"new": "booked", "booked": "booked", "moved": "moved", "rescheduled": "moved", "cancelled": "cancelled",
               "canceled": "cancelled", "reminder": "reminder"}
_QUIET = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)-([01]?\d|2[0-3]):([0-5]\d)")
_ON_OFF = {"on": True, "yes": True, "off": False, "no": False}
_PREFIX = re.compile(r"\+[1-9][0-9]{0,3}")
USAGE = ("client-notices [on|off | channel email|sms|both | new on|off | reminders on|off | quiet 21:00-08:00|off"
         " | details on|off | language en|es | prefix +44|off | template booked|moved|cancelled|reminder <text>|reset]")


@dataclass(frozen=True, slots=True)
class ClientNoticeSettings:
    """What a practice tells its clients, read from its settings (defaults filled in)."""

    practice: str = ""
    enabled: bool = True
    channels: str = "email"
    new: bool = False
    reminders: bool = False
    quiet: str = ""
    details: bool = False
    language: str = "en"
    templates: dict[str, str] = field(default_factory=dict)
    phone_prefix: str = ""

    @property
    def email(self) -> bool:
        return self.enabled and self.channels in ("email", "both")

    @property
    def sms(self) -> bool:
        return self.enabled and self.channels in ("sms", "both")

    def lines(self) -> list[str]:
        """The settings as short lines for chat and the CLI."""
        def onoff(flag: bool) -> str:
            return "on" if flag else "off"

        by = self.channels if self.channels != "both" else "email and sms"
        lines = [
            f"Client messages: {onoff(self.enabled)}, by {by}",
            f"New bookings: {onoff(self.new)}; reminders 24 h before: {onoff(self.reminders)}",
            f"Quiet hours: {self.quiet or 'none'}; service named: {onoff(self.details)}; language: {self.language}",
            f"Numbers without a country code: {'read as ' + self.phone_prefix if self.phone_prefix else 'not texted'}",
        ]
        for kind in KINDS:
            if kind in self.templates:
                lines.append(f"Template {kind}: {self.templates[kind]}")
        if not self.templates:
            lines.append("Templates: the built-in ones")
        return lines


def notice_settings(settings: dict[str, Any] | None, practice: str = "") -> ClientNoticeSettings:
    """The client-notice settings held in a practice's settings (unknown or bad values read as defaults)."""
    raw = dict(settings or {})
    channels = str(raw.get("client_channels") or "email")
    language = str(raw.get("client_language") or "en")
    templates = raw.get("client_templates")
    return ClientNoticeSettings(
        practice=practice,
        enabled=raw.get("client_notices", "on") != "off",
        channels=channels if channels in CHANNELS else "email",
        new=bool(raw.get("client_notices_new")),
        reminders=bool(raw.get("client_reminders")),
        quiet=str(raw.get("client_quiet") or ""),
        details=bool(raw.get("client_details")),
        language=language if language in LANGUAGES else "en",
        templates={k: str(v) for k, v in templates.items() if k in KINDS} if isinstance(templates, dict) else {},
        phone_prefix=str(raw.get("client_phone_prefix") or "") if _PREFIX.fullmatch(
            str(raw.get("client_phone_prefix") or "")) else "",
    )


def check_template(text: str) -> str:
    """A template as it will be stored; Invalid (naming the placeholder and the allowed ones) when it is not one."""
    text = text.strip()
    if not text:
        raise Invalid("a template needs some text, e.g. `Your visit with {practitioner} is on {date} at {time}.`")
    if len(text) > MAX_TEMPLATE:
        raise Invalid(f"a template is at most {MAX_TEMPLATE} characters (yours has {len(text)})")
    allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        raise Invalid("a template has an unmatched { or }; write {{ or }} for a brace itself") from None
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            shown = "{" + name + "}" if name else "{}"
            raise Invalid(f"{shown} is not a placeholder; use {allowed}")
        if spec or conversion:
            raise Invalid(f"write {{{name}}} as it is, without a format or conversion")
    return text


def render_template(text: str, fields: dict[str, str]) -> str:
    """A checked template filled in (each placeholder's value as plain text)."""
    return text.format(**{p: fields.get(p, "") for p in PLACEHOLDERS})


def parse_quiet(value: str) -> str:
    """`21:00-08:00` as stored ("" for none); Invalid otherwise."""
    word = value.strip().lower()
    if word in ("off", "none", ""):
        return ""
    found = _QUIET.fullmatch(word)
    if found is None or found.group(1, 2) == found.group(3, 4):
        raise Invalid(f"{value!r} is not a span of hours; say e.g. `quiet 21:00-08:00`, or `quiet off`")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    return f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}"


@dataclass(frozen=True, slots=True)
class Change:
    """One change of the settings (`what` None: only show them)."""

    what: str | None = None
    value: Any = None
    kind: str = ""


def _flag(words: list[str], what: str) -> bool:
    if len(words) != 2 or words[1].lower() not in _ON_OFF:
        raise Invalid(f"say `client-notices {what} on` or `client-notices {what} off`")
    return _ON_OFF[words[1].lower()]


def parse_change(words: list[str], rest: str = "") -> Change:
    """The words after the command (and the text after the verb, for a template's own spacing)."""
    if not words or words == ["show"]:
        return Change()
    head = words[0].lower()
    if head in ("on", "off") and len(words) == 1:
        return Change("enabled", head == "on")
    if head in ("channel", "channels"):
        if len(words) != 2 or words[1].lower() not in CHANNELS:
            raise Invalid("say `client-notices channel email`, `... channel sms` or `... channel both`")
        return Change("channels", words[1].lower())
    if head in ("new", "reminders", "details"):
        return Change(head, _flag(words, head))
    if head == "quiet":
        if len(words) != 2:
            raise Invalid("say `client-notices quiet 21:00-08:00` or `client-notices quiet off`")
        return Change("quiet", parse_quiet(words[1]))
    if head == "prefix":
        value = words[1] if len(words) == 2 else ""
        if value.lower() in ("off", "none"):
            return Change("prefix", "")
        if not _PREFIX.fullmatch(value):
            raise Invalid("say the country code clients' local numbers are in, e.g. `client-notices prefix +44`, "
                          "or `client-notices prefix off`")
        return Change("prefix", value)
    if head == "language":
        if len(words) != 2 or words[1].lower() not in LANGUAGES:
            raise Invalid(f"say `client-notices language {'|'.join(LANGUAGES)}`")
        return Change("language", words[1].lower())
    if head == "template":
        if len(words) < 3 or words[1].lower() not in _KIND_WORDS:
            raise Invalid("say `client-notices template booked|moved|cancelled|reminder <text>` or "
                          "`client-notices template moved reset`")
        kind = _KIND_WORDS[words[1].lower()]
        if len(words) == 3 and words[2].lower() == "reset":
            return Change("template", None, kind)
        text = rest.split(None, 2)[2] if rest and len(rest.split(None, 2)) == 3 else " ".join(words[2:])
        return Change("template", check_template(text), kind)
    raise Invalid(f"{words[0]!r} is not a client-notices setting; {USAGE}")


_KEYS = {"enabled": "client_notices", "channels": "client_channels", "new": "client_notices_new",
         "reminders": "client_reminders", "quiet": "client_quiet", "details": "client_details",
         "language": "client_language", "prefix": "client_phone_prefix"}


async def client_notice_settings(core: Core, practice_id: int) -> ClientNoticeSettings:
    """The practice's current settings."""
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        if practice is None:
            raise NotFound("your practice no longer exists; ask an admin")
        return notice_settings(practice.settings, practice.name)


async def change_client_notices(core: Core, practice_id: int, change: Change, *, actor: str) -> ClientNoticeSettings:
    """Apply one change (audited when it changes anything); the settings after it."""
    if change.what is None:
        return await client_notice_settings(core, practice_id)
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id, with_for_update=True)
        if practice is None:
            raise NotFound("your practice no longer exists; ask an admin")
        settings = dict(practice.settings or {})
        if change.what == "template":
            templates = dict(notice_settings(settings).templates)
            before: Any = templates.get(change.kind)
            if change.value is None:
                templates.pop(change.kind, None)
            else:
                templates[change.kind] = change.value
            after: Any = templates.get(change.kind)
            key = f"client_templates.{change.kind}"
            settings["client_templates"] = templates
        else:
            key = _KEYS[change.what]
            before = settings.get(key)
            after = ("on" if change.value else "off") if change.what == "enabled" else change.value
            settings[key] = after
        if before != after:
            practice.settings = settings
            await audit.record(s, actor=actor, action="practice.client_notices", practice_id=practice.id,
                               before={key: before}, after={key: after})
        return notice_settings(settings, practice.name)


async def practice_id_named(core: Core, practice_name: str | None) -> int:
    """The id of the practice called `practice_name` (None: the only or first practice)."""
    async with core.store.session() as s:
        return (await practice_by_name(s, practice_name)).id


async def client_message_health(core: Core, practice_id: int) -> list[str]:
    """Lines for chat: the practice's client messages by channel and state, and the last failure (no recipient)."""
    async with core.store.session() as s:
        rows = (await s.execute(select(ClientNotice.channel, ClientNotice.status, func.count())
                                .where(ClientNotice.practice_id == practice_id)
                                .group_by(ClientNotice.channel, ClientNotice.status))).all()
        last = (await s.execute(select(ClientNotice.channel, ClientNotice.kind, ClientNotice.last_error)
                                .where(ClientNotice.practice_id == practice_id, ClientNotice.status == "failed")
                                .order_by(ClientNotice.id.desc()).limit(1))).first()
    counts: dict[str, dict[str, int]] = {}
    for channel, status, n in rows:
        counts.setdefault(str(channel), {})[str(status)] = int(n)
    lines = [f"Messages by {channel}: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
             for channel, states in sorted(counts.items())] or ["Messages: none yet"]
    if last is not None:
        lines.append(f"Last failure ({last[0]}, {last[1]}): {last[2] or 'no reason given'}")
    return lines


def quiet_until(quiet: str, now: datetime, zone: ZoneInfo) -> datetime:
    """`now`, or the end of the practice's quiet hours for clients when `now` falls inside them."""
    try:
        start_text, end_text = quiet.split("-", 1)
        start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    except ValueError:
        return now
    local = now.astimezone(zone)
    t = local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return now
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone)


def configured_channels(core: Core) -> frozenset[str]:
    """The channels this server can send on: "email" (a mail integration set up), "sms" (a texting one).

    One pass over the registry (reading the entry points costs milliseconds): callers ask once per run.
    """
    found = set()
    for integration in registry.integrations():
        if integration.mail is None and integration.sms is None:
            continue
        try:
            ready = integration.is_configured(core.settings)
        except ConfigError as exc:
            # A wrong variable never fails the change this runs inside: its channel is off, and said so.
            log.warning("client messages: a setting is wrong", extra={"integration": integration.name,
                                                                       "error": str(exc)})
            continue
        if ready:
            found.add("email" if integration.mail is not None else "sms")
    return frozenset(found)
