"""NylasCalendar: the CalendarProvider for one calendar of one Nylas grant.

- Reading lists the calendar's events in the window (`start`/`end`, recurring events expanded into
  occurrences, 200 a page, `next_cursor` passed back as `page_token`). Nylas has no change cursor:
  the cursor clinicbot keeps holds the time of the last read and the ids it saw. The next poll asks
  for the events `updated_after` it (with a margin for clock skew), cancelled ones included so that
  they become deletions, and for the ids still in the window (`select=id`, no content): an event
  deleted outright (Microsoft deletes at once; Google keeps it cancelled) is in no `updated_after`
  answer, and its missing id says it is gone. The window moves with the clock: the slice it newly
  reaches is read whole. A full listing runs again once `full_every` has passed (or when the
  window jumped past the cursor's).
- Occurrences keep their own ids and their master's (`series=False`: the core expands recurring
  appointments before writing, as for Outlook).
- Writing: create answers 200; Nylas takes no idempotency key, so each copy carries its key in
  `metadata.key1`, and a create first looks the key up with `metadata_pair`: a retried create finds
  the copy made before (AlreadyExists naming it) instead of making a second one. update PUTs the
  whole `when` and `metadata` (PUT replaces the nested objects it is sent), after reading the event
  to check the etag and to keep metadata others wrote. Read-only calendars and events are never written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from adapters.kit.http import RetryPolicy
from adapters.nylas.client import PROVIDER, NylasClient
from adapters.nylas.mapping import KEY_FIELD, copy_key, from_nylas, to_nylas
from adapters.nylas.settings import nylas_settings
from sync.contract import (
    AlreadyExists,
    BadPayload,
    BusyInterval,
    CalendarCapabilities,
    ConnectionInfo,
    CursorExpired,
    NotFound,
    Refused,
    WrongEtag,
)
from sync.contract.integration import HostSettings
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["PAGE_SIZE", "NylasCalendar", "api_key", "grant_id"]

#: Nylas's largest page of events.
PAGE_SIZE = 200
#: Poll with this much overlap: events updated while the last read was running are read again.
SKEW_SECONDS = 300
#: A full listing at least this often, whatever the polls saw.
FULL_EVERY = timedelta(hours=24)
#: The cursor remembers at most this many recently read events (to leave out of the next poll's overlap).
MAX_RECENT = 500


def grant_id(conn: ConnectionInfo) -> str:
    """The connection's grant: from a hosted sign-in (config) or given with the API key (credentials)."""
    creds = conn.credentials or {}
    grant = conn.config.get("grant_id") or creds.get("grant_id") or creds.get("username")
    if not isinstance(grant, str) or not grant.strip():
        raise Refused("nylas: the connection names no grant; connect it again", provider=PROVIDER)
    return grant.strip()


def api_key(conn: ConnectionInfo, host: HostSettings) -> str:
    """The application's API key: given with the connection, else the server's."""
    key = (conn.credentials or {}).get("password") or nylas_settings(host).nylas_api_key
    if not isinstance(key, str) or not key:
        raise Refused("nylas: no API key; set CLINICBOT_NYLAS_API_KEY", provider=PROVIDER)
    return key


def open_client(conn: ConnectionInfo, host: HostSettings, policy: RetryPolicy | None = None) -> NylasClient:
    """A client for the connection's application (API key) on this server's region."""
    return NylasClient(nylas_settings(host).nylas_api_url, api_key(conn, host), transport=conn.transport,
                       policy=policy)


class NylasCalendar:
    """CalendarProvider over the Nylas v3 events API for one calendar of one grant."""

    name = "nylas"

    def __init__(
        self,
        conn: ConnectionInfo,
        calendar_id: str,
        host: HostSettings,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        page_size: int = PAGE_SIZE,
        full_every: timedelta = FULL_EVERY,
    ) -> None:
        self.grant_id = grant_id(conn)
        self.calendar_id = calendar_id
        self.page_size = page_size
        self.full_every = full_every
        self._clock = clock
        read_only = calendar_id in (conn.config.get("read_only_calendars") or [])
        self.capabilities = CalendarCapabilities(read_only=read_only, push=True, free_busy=False, delta=True,
                                                 series=False)
        self.api = open_client(conn, host, policy)
        self.grant_path = f"/v3/grants/{quote(self.grant_id, safe='')}"
        self._calendar_read_only: bool | None = None

    def _event_path(self, remote_id: str) -> str:
        # Occurrence ids may hold "#" and "_<time>" suffixes: the whole id is one path segment.
        return f"{self.grant_path}/events/{quote(remote_id, safe='')}"

    # --- reading --------------------------------------------------------------------------------------
    async def changes(self, cursor: str | None, window: Window) -> ChangeSet:
        """Everything in the window (cursor None, or a full listing due), else what was updated since the cursor."""
        now = self._clock()
        span = [int(window.start.timestamp()), int(window.end.timestamp())]
        state = _read_cursor(cursor) if cursor is not None else None
        # The window moves with the clock; a cursor serves while its window still overlaps the asked one.
        full = (state is None or span[0] >= state["w"][1] or span[1] <= state["w"][0]
                or now - state["full"] >= self.full_every.total_seconds())
        params = {"calendar_id": self.calendar_id, "start": str(span[0]), "end": str(span[1]),
                  "expand_recurring": "true", "limit": str(self.page_size)}
        entering: list[dict[str, Any]] = []
        if not full:
            assert state is not None
            # Events the moved window now reaches were not updated lately: its new edges are read whole.
            for lo, hi in ((span[0], min(span[1], state["w"][0])), (max(span[0], state["w"][1]), span[1])):
                if lo < hi:
                    entering += await self.api.pages(f"{self.grant_path}/events",
                                                     {**params, "start": str(lo), "end": str(hi)})
            params.update(updated_after=str(int(state["since"]) - SKEW_SECONDS), show_cancelled="true")
        raw = await self.api.pages(f"{self.grant_path}/events", params)
        if entering:
            listed = {e.get("id") for e in raw}
            raw += [e for e in entering if e.get("id") not in listed]
        # The overlap reads again what the last poll read: what it already handed over (same etag) is left out.
        known: dict[str, str] = state["recent"] if state is not None and not full else {}
        items: list[RemoteItem] = []
        deleted: list[str] = []
        notes: list[str] = []
        unread: list[str] = []
        recent: dict[str, str] = {}
        for event in raw:
            event_id = event.get("id")
            if not isinstance(event_id, str):
                notes.append("skipped an event without an id")
                continue
            fresh = _updated(event) > now - 2 * SKEW_SECONDS
            if event.get("status") == "cancelled":
                if fresh:
                    recent[event_id] = "deleted"
                if known.get(event_id) != "deleted":
                    deleted.append(event_id)
                continue
            try:
                item = from_nylas(event)
            except BadPayload as exc:
                notes.append(f"skipped an event: {exc}")
                unread.append(event_id)  # not a deletion
                continue
            if fresh and item.etag:
                recent[event_id] = item.etag
            if known.get(event_id) != item.etag:
                items.append(item)
        if len(recent) > MAX_RECENT:
            recent = {}  # a bulk change: the next poll hands some of it over twice, which is harmless
        if full:
            present = sorted({i.remote_id for i in items} | set(unread))
        else:
            # An event deleted outright is in no updated_after answer: the ids still in the window say so.
            assert state is not None
            present = await self._ids(params)
            listed = {i.remote_id for i in items} | set(deleted) | set(unread)
            for remote_id in sorted(set(state["ids"]) - set(present) - listed):
                # Missing from the window: deleted outright, or moved out of it (then it is handed over as it is).
                try:
                    moved = await self._get_raw(remote_id)
                except NotFound:
                    deleted.append(remote_id)
                    continue
                if moved.get("status") == "cancelled":
                    deleted.append(remote_id)
                else:
                    items.append(from_nylas(moved))
        last_full = now if full else float(state["full"]) if state else now
        # What was read is part of the cursor: a read that saw changes never hands back the cursor it got.
        seen = hashlib.sha256(repr(sorted((i.remote_id, i.etag) for i in items) + sorted(deleted)).encode())
        new_cursor = json.dumps({"v": 1, "since": int(now), "full": int(last_full), "w": span,
                                 "seen": seen.hexdigest()[:12], "recent": recent, "ids": _pack(present)})
        return ChangeSet(items=items, deleted_ids=deleted, cursor=new_cursor, full=full, notes=notes,
                         kept_ids=unread)

    async def _ids(self, params: dict[str, str]) -> list[str]:
        """The ids of every live event in the window: small pages (`select=id`), no event content."""
        query = {k: v for k, v in params.items() if k not in ("updated_after", "show_cancelled")}
        found = await self.api.pages(f"{self.grant_path}/events", {**query, "select": "id"})
        return sorted({str(e["id"]) for e in found if isinstance(e.get("id"), str)})

    async def _get_raw(self, remote_id: str) -> dict[str, Any]:
        return await self.api.data("GET", self._event_path(remote_id), params={"calendar_id": self.calendar_id})

    async def get(self, remote_id: str) -> RemoteItem:
        """One event; NotFound when it is gone (Google keeps deleted events as cancelled)."""
        raw = await self._get_raw(remote_id)
        if raw.get("status") == "cancelled":
            raise NotFound("nylas: the event was deleted", provider=PROVIDER)
        return from_nylas(raw)

    async def free_busy(self, window: Window) -> list[BusyInterval]:
        """Busy intervals of the calendar's events in the window (busy, not cancelled; occurrences expanded)."""
        params = {"calendar_id": self.calendar_id, "start": str(int(window.start.timestamp())),
                  "end": str(int(window.end.timestamp())), "expand_recurring": "true", "busy": "true",
                  "limit": str(self.page_size)}
        intervals = []
        for raw in await self.api.pages(f"{self.grant_path}/events", params):
            if raw.get("status") == "cancelled" or raw.get("busy") is False:
                continue
            try:
                item = from_nylas(raw)
            except BadPayload:
                continue
            intervals.append(BusyInterval(item.event.start, item.event.end))
        return sorted(intervals, key=lambda b: (b.start, b.end))

    # --- writing -----------------------------------------------------------------------------------------
    async def _writable(self, raw: dict[str, Any] | None = None) -> None:
        if self.capabilities.read_only:
            raise Refused("nylas: this calendar is read-only for clinicbot", provider=PROVIDER)
        if raw is not None and raw.get("read_only"):
            raise Refused("nylas: this event is read-only (someone else's invitation)", provider=PROVIDER)
        if self._calendar_read_only is None:
            cal = await self.api.data("GET", f"{self.grant_path}/calendars/{quote(self.calendar_id, safe='')}")
            self._calendar_read_only = bool(cal.get("read_only"))
        if self._calendar_read_only:
            raise Refused("nylas: this calendar is read-only", provider=PROVIDER)

    async def find_copy(self, key: str, event: EventData) -> dict[str, Any] | None:
        """The live event carrying this copy key in metadata, if any (a create made before a crash)."""
        # metadata_pair goes with calendar_id only; start/end bound the search around the copy's time.
        params = {"calendar_id": self.calendar_id, "metadata_pair": f"{KEY_FIELD}:{key}",
                  "start": str(int((event.start - timedelta(days=1)).timestamp())),
                  "end": str(int((event.end + timedelta(days=1)).timestamp())), "limit": "5"}
        found = await self.api.pages(f"{self.grant_path}/events", params)
        live = [e for e in found if e.get("status") != "cancelled" and (e.get("metadata") or {}).get(KEY_FIELD) == key]
        return live[0] if live else None

    async def create(self, event: EventData, idempotency_key: str) -> RemoteItem:
        """Create after looking for a copy with the same key; one found raises AlreadyExists naming it."""
        await self._writable()
        key = copy_key(idempotency_key)
        existing = await self.find_copy(key, event)
        if existing is not None:
            raise AlreadyExists("nylas: a copy with this key exists", remote_id=str(existing.get("id")),
                                provider=PROVIDER)
        created = await self.api.data("POST", f"{self.grant_path}/events",
                                      params={"calendar_id": self.calendar_id, "notify_participants": "false"},
                                      json=to_nylas(event, key))
        return from_nylas(created)

    async def _current(self, remote_id: str, if_match: str | None) -> dict[str, Any]:
        raw = await self._get_raw(remote_id)
        if raw.get("status") == "cancelled":
            raise NotFound("nylas: the event was deleted", provider=PROVIDER)
        if if_match is not None and from_nylas(raw).etag != if_match:
            raise WrongEtag("nylas: the event changed since it was read", provider=PROVIDER)
        await self._writable(raw)
        return raw

    async def update(self, remote_id: str, event: EventData, if_match: str | None) -> RemoteItem:
        """PUT the event's fields (its metadata merged with what others wrote); WrongEtag when it changed."""
        current = await self._current(remote_id, if_match)
        meta = current.get("metadata") if isinstance(current.get("metadata"), dict) else {}
        body = to_nylas(event, None, meta)
        updated = await self.api.data("PUT", self._event_path(remote_id),
                                      params={"calendar_id": self.calendar_id, "notify_participants": "false"},
                                      json=body)
        return from_nylas(updated)

    async def delete(self, remote_id: str, if_match: str | None) -> None:
        """Delete; NotFound when it is already gone, WrongEtag when it changed since it was read."""
        await self._current(remote_id, if_match)
        await self.api.request("DELETE", self._event_path(remote_id),
                               params={"calendar_id": self.calendar_id, "notify_participants": "false"})

    async def aclose(self) -> None:
        await self.api.aclose()


def _read_cursor(cursor: str) -> dict[str, Any]:
    try:
        state = json.loads(cursor)
        if state.get("v") != 1:
            raise ValueError("version")
        int(state["since"]), int(state["full"])
        window = [int(x) for x in state["w"]]
        recent, ids = state.get("recent") or {}, _unpack(state.get("ids") or "")
    except (ValueError, TypeError, KeyError, AttributeError):
        raise CursorExpired("nylas: the stored cursor is not one this version reads", provider=PROVIDER) from None
    if not isinstance(recent, dict):
        raise CursorExpired("nylas: the stored cursor is not one this version reads", provider=PROVIDER)
    return {"since": int(state["since"]), "full": int(state["full"]), "w": window,
            "recent": {str(k): str(v) for k, v in recent.items()}, "ids": [str(i) for i in ids]}


def _pack(ids: list[str]) -> str:
    """The window's ids for the cursor, compressed (Outlook ids are long and share their prefixes)."""
    return base64.b64encode(zlib.compress("\n".join(ids).encode(), 9)).decode()


def _unpack(packed: Any) -> list[str]:
    if not isinstance(packed, str):
        raise ValueError("ids")
    if not packed:
        return []
    try:
        return [i for i in zlib.decompress(base64.b64decode(packed, validate=True)).decode().split("\n") if i]
    except (zlib.error, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("ids") from exc


def _updated(event: dict[str, Any]) -> float:
    value = event.get("updated_at")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
