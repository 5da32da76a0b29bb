"""What booking systems put in their feeds (Jane App, SimplePractice, Acuity, Setmore ...), read into
the client and service fields clinicbot's own properties (X-CLINICBOT-*) would carry.

Booking feeds carry the booking in plain iCalendar: the SUMMARY names service and client in a
fixed shape, an ATTENDEE is the client (CN and mailto), the ORGANIZER the practitioner, CATEGORIES
the service, LOCATION the room or clinic. Per field, the first that has a value wins:
- client: X-CLINICBOT-CLIENT-NAME, an ATTENDEE that is not the organizer, the SUMMARY pattern;
- client email: X-CLINICBOT-CLIENT-EMAIL, that ATTENDEE's mailto;
- service: X-CLINICBOT-SERVICE, the SUMMARY pattern, the first CATEGORIES value.
The SUMMARY itself always stays as the appointment's title, so a card never shows an empty line.

The SUMMARY pattern is set per connection (config "summary_pattern"):
- "auto" (default): "Client (Service)" when the SUMMARY ends in a parenthesis, else
  "Service - Client" (or "Service: Client") when it has one such separator;
- "service-client": "Service - Client" / "Service: Client" only;
- "client-service": "Client (Service)", "Client - Service" / "Client: Service";
- "title": the SUMMARY is a title only, nothing is read from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from adapters.kit.ical.contentlines import Component
from sync.contract.items import EventData

__all__ = ["DEFAULT_PATTERN", "PATTERNS", "People", "interpret", "people_of", "split_summary"]

PATTERNS = ("auto", "service-client", "client-service", "title")
DEFAULT_PATTERN = "auto"
_PAREN = re.compile(r"^(?P<a>.+?)\s*\((?P<b>[^()]+)\)\s*$")
#: " - ", " – ", " — " or ": " between two parts (a hyphen inside a word is not a separator).
_SEP = re.compile(r"\s+[-–—]\s+|:\s+")


@dataclass(frozen=True, slots=True)
class People:
    """The client an event names as its attendee, and the organizer's name."""

    client_name: str | None = None
    client_email: str | None = None
    organizer: str | None = None


def _mailto(value: str) -> str | None:
    value = value.strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    return value if "@" in value and " " not in value else None


def _unquote(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().strip('"').strip()
    return value or None


def _people(event: Component) -> People:
    organizer = event.first("ORGANIZER")
    organizer_email = _mailto(organizer.value) if organizer else None
    organizer_name = _unquote(organizer.param("CN")) if organizer else None
    for attendee in event.all("ATTENDEE"):
        email = _mailto(attendee.value)
        role = (attendee.param("ROLE") or "").upper()
        cutype = (attendee.param("CUTYPE") or "INDIVIDUAL").upper()
        if cutype not in ("INDIVIDUAL", "UNKNOWN") or role == "CHAIR":
            continue  # a room, a group, or the chair (the practitioner)
        if email and organizer_email and email.lower() == organizer_email.lower():
            continue
        name = _unquote(attendee.param("CN"))
        if name and name == organizer_name:
            continue
        if name or email:
            return People(name, email, organizer_name)
    return People(organizer=organizer_name)


def people_of(calendar: Component) -> dict[str, People]:
    """UID -> the people of the first VEVENT with that UID (overrides of a series share them)."""
    found: dict[str, People] = {}
    for child in calendar.children:
        if child.name != "VEVENT":
            continue
        uid = child.first("UID")
        if uid is None or uid.value.strip() in found:
            continue
        found[uid.value.strip()] = _people(child)
    return found


def split_summary(summary: str, pattern: str) -> tuple[str | None, str | None]:
    """(client, service) as the pattern reads them from a SUMMARY; (None, None) when it does not fit."""
    text = " ".join(summary.split())
    if pattern == "title" or not text:
        return None, None
    paren = _PAREN.match(text)
    if paren and pattern in ("auto", "client-service"):
        return paren["a"].strip() or None, paren["b"].strip() or None
    parts = _SEP.split(text)
    if len(parts) != 2 or not all(p.strip() for p in parts):
        return None, None
    first, second = parts[0].strip(), parts[1].strip()
    if pattern == "client-service":
        return first, second
    return second, first  # "Service - Client", the shape Jane and most schedulers use


def interpret(event: EventData, people: People | None, pattern: str) -> EventData:
    """The event with client and service filled in from what the feed carries (see the module doc)."""
    pattern = pattern if pattern in PATTERNS else DEFAULT_PATTERN
    client, service = split_summary(event.summary, pattern)
    changes: dict[str, object] = {}
    if not event.client_name:
        name = (people.client_name if people else None) or client
        if name:
            changes["client_name"] = name
    if not event.client_email and people is not None and people.client_email:
        changes["client_email"] = people.client_email
    if not event.service:
        chosen = service or next((c.strip() for c in event.categories if c.strip()), None)
        if chosen:
            changes["service"] = chosen[:200]
    return event.with_changes(**changes) if changes else event
