"""CalDAV resources <-> RemoteItems.

A resource (one .ics href) holds one event, or a series master with its RECURRENCE-ID overrides,
all sharing one UID. Remote ids are hrefs relative to the calendar collection ("visit-42.ics");
an override's id adds its recurrence id in UTC ("visit-42.ics#20260330T070000Z"). All items of one
resource are always reported together and share the resource's etag: an override id missing from
a report that holds its resource's other items is gone.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from urllib.parse import quote

from adapters.kit.ical import parse_events
from adapters.kit.ical.reader import ReadProblem
from sync.contract.items import EventData, RemoteItem, Window

__all__ = [
    "CollectionPaths",
    "in_window",
    "items_from_resource",
    "recurrence_token",
    "resource_name",
    "split_id",
]

_SAFE_NAME = re.compile(r"[A-Za-z0-9._@+=-]{1,180}\Z")


def resource_name(idempotency_key: str) -> str:
    """The resource name a create uses: the key itself when it is URL-safe, else a digest of it."""
    name = (
        idempotency_key
        if _SAFE_NAME.match(idempotency_key)
        else ("cb-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40])
    )
    return name if name.lower().endswith(".ics") else f"{name}.ics"


def recurrence_token(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def split_id(remote_id: str) -> tuple[str, str | None]:
    """(resource id, recurrence token or None)."""
    resource, sep, token = remote_id.partition("#")
    return resource, (token if sep else None)


class CollectionPaths:
    """Maps remote ids to request paths and back for one collection."""

    def __init__(self, collection_path: str) -> None:
        self.path = collection_path if collection_path.endswith("/") else collection_path + "/"

    def href(self, resource_id: str) -> str:
        if resource_id.startswith("/"):
            return quote(resource_id)
        return quote(self.path + resource_id)

    def resource_id(self, href_path: str) -> str:
        if href_path.startswith(self.path) and len(href_path) > len(self.path):
            return href_path[len(self.path) :]
        return href_path

    def is_collection(self, href_path: str) -> bool:
        return href_path.rstrip("/") == self.path.rstrip("/")


def items_from_resource(
    resource_id: str, etag: str | None, data: str | bytes, *, default_tz: str | None,
    problems: list[ReadProblem] | None = None,
) -> list[RemoteItem]:
    """The RemoteItems of one resource (master first). Raises BadPayload when unreadable as a
    whole; events in it that are skipped or repaired are added to `problems`."""
    events = parse_events(data, default_tz=default_tz, problems=problems)
    items: list[RemoteItem] = []
    master_seen = False
    for event in events:
        if event.recurrence_id is None and not master_seen:
            master_seen = True
            items.insert(0, RemoteItem(resource_id, etag, event))
        else:
            rid = event.recurrence_id or event.start
            items.append(RemoteItem(f"{resource_id}#{recurrence_token(rid)}", etag, event))
    return items


def in_window(items: list[RemoteItem], window: Window) -> bool:
    """Whether a resource touches the window (a series counts when it starts before the window ends)."""
    for item in items:
        event = item.event
        if event.rrule and event.start < window.end:
            return True
        if window.overlaps(event.start, event.end) or (
            event.start == event.end and window.start <= event.start < window.end
        ):
            return True
    return False


def master_and_overrides(events: list[EventData]) -> tuple[EventData | None, list[EventData]]:
    master = next((e for e in events if e.recurrence_id is None), None)
    return master, [e for e in events if e is not master]
