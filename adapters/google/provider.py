"""GoogleCalendar: the CalendarProvider for one Google calendar.

- changes(): the first run lists the window (timeMin/timeMax, series unexpanded) page by page and
  keeps the nextSyncToken of the last page; later runs pass only the syncToken. 410 raises
  CursorExpired, and the core runs one full resync.
- Cancelled events are deletions. A cancelled occurrence of a series is not an event of its own:
  it becomes an EXDATE of the series (Google keeps it as a cancelled exception).
- create() chooses the event id from the idempotency key, so a retried insert gets 409
  (AlreadyExists, naming the existing event) instead of a second copy; an id left behind by a
  deleted event (a "cancelled" tombstone) moves the create on to the key's next id. update() patches
  with If-Match; 412 is WrongEtag.
- sendUpdates follows the connection's `send_updates` ("none" unless the practice says otherwise).
- attachments()/attachment(): the Drive files attached to an event (adapters.google.drive), read
  only when the person granted Drive access at connect (`--attachments on`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from adapters.google.auth import GoogleAuth, GoogleTokens
from adapters.google.client import GoogleClient
from adapters.google.drive import GoogleDrive
from adapters.google.mapping import (
    PRIVATE_UID,
    event_id_for,
    instance_id,
    original_start,
    to_google,
    to_remote_item,
)
from adapters.google.settings import google_settings
from adapters.kit.http import RetryPolicy
from sync.contract import (
    AlreadyExists,
    AttachmentFile,
    AttachmentInfo,
    BadPayload,
    BusyInterval,
    CalendarCapabilities,
    ConnectionInfo,
    NotFound,
    Refused,
)
from sync.contract.integration import HostSettings
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["SEND_UPDATES", "GoogleCalendar"]

PROVIDER = "google"
SEND_UPDATES = ("none", "all", "externalOnly")
PAGE_SIZE = 250
#: An occurrence's instance id: the series id, "_", and the occurrence's original start.
INSTANCE = re.compile(r"^(?P<series>.+)_(?P<stamp>\d{8}(?:T\d{6}Z)?)$")
#: A copy deleted by hand this many times is not re-created again (each costs a fresh event id).
MAX_ID_GENERATIONS = 8


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GoogleCalendar:
    """CalendarProvider over the Google Calendar API v3 for one calendar id."""

    name = "google"

    def __init__(
        self,
        conn: ConnectionInfo,
        calendar_id: str,
        settings: HostSettings,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        page_size: int = PAGE_SIZE,
    ) -> None:
        send_updates = str(conn.config.get("send_updates", "none"))
        if send_updates not in SEND_UPDATES:
            raise Refused(f"google: send_updates must be one of {', '.join(SEND_UPDATES)}", provider=PROVIDER)
        self.calendar_id = calendar_id
        self.send_updates = send_updates
        self.page_size = page_size
        read_only = calendar_id in (conn.config.get("read_only_calendars") or [])
        self.capabilities = CalendarCapabilities(read_only=read_only, push=True, free_busy=True, delta=True)
        self.tokens = GoogleTokens(settings, conn, clock=clock)
        self.api = GoogleClient(
            google_settings(settings).google_api_url,
            auth=GoogleAuth(self.tokens),
            transport=conn.transport,
            policy=policy,
            sleep=sleep,
        )
        self.events_path = f"/calendar/v3/calendars/{quote(calendar_id, safe='')}/events"
        self.drive = GoogleDrive(
            GoogleClient(google_settings(settings).google_drive_url, auth=GoogleAuth(self.tokens),
                         transport=conn.transport, policy=policy, sleep=sleep),
            self.tokens.scopes,
        )

    # --- reading --------------------------------------------------------------------------------------
    async def changes(self, cursor: str | None, window: Window) -> ChangeSet:
        """Changed events since the sync token (everything in the window when None)."""
        if cursor is None:
            params = {
                "timeMin": _rfc3339(window.start),
                "timeMax": _rfc3339(window.end),
                "singleEvents": "false",
            }
            raw, token = await self._list(params)
            return self._full_changes(raw, token)
        raw, token = await self._list({"syncToken": cursor, "singleEvents": "false"})
        return await self._incremental_changes(raw, token, window)

    async def _list(self, params: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
        items: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:
            query = {
                **params,
                "maxResults": str(self.page_size),
                **({"pageToken": page_token} if page_token else {}),
            }
            body = await self.api.request("GET", self.events_path, params=query) or {}
            page = body.get("items", [])
            if not isinstance(page, list):
                raise BadPayload("google: events.list items is not a list", provider=PROVIDER)
            items += [i for i in page if isinstance(i, dict) and isinstance(i.get("id"), str)]
            page_token = body.get("nextPageToken")
            if not page_token:
                return items, body.get("nextSyncToken")

    def _full_changes(self, raw: list[dict[str, Any]], token: str | None) -> ChangeSet:
        if not token:
            raise BadPayload("google: the last events.list page carried no nextSyncToken", provider=PROVIDER)
        cancelled: dict[str, list[datetime]] = {}
        for r in raw:
            when = original_start(r)
            if r.get("status") == "cancelled" and when is not None:
                cancelled.setdefault(str(r["recurringEventId"]), []).append(when)
        items = [
            to_remote_item(r, extra_exdates=cancelled.get(r["id"], ())) for r in raw if r.get("status") != "cancelled"
        ]
        return ChangeSet(items=items, cursor=token, full=True)

    async def _incremental_changes(self, raw: list[dict[str, Any]], token: str | None, window: Window) -> ChangeSet:
        if not token:
            raise BadPayload("google: the last events.list page carried no nextSyncToken", provider=PROVIDER)
        items: dict[str, RemoteItem] = {}
        deleted: list[str] = []
        series_to_read: set[str] = set()
        for r in raw:
            rid = str(r["id"])
            if r.get("status") == "cancelled":
                deleted.append(rid)
                if r.get("recurringEventId"):
                    series_to_read.add(str(r["recurringEventId"]))
            elif r.get("recurrence"):
                series_to_read.add(rid)
            else:
                # Exceptions always count: their series may reach into the window.
                item = to_remote_item(r)
                if item.event.recurrence_id is not None or window.overlaps(item.event.start, item.event.end):
                    items[rid] = item
        for master_id in sorted(series_to_read):
            exceptions: list[RemoteItem] = []
            master = await self._series(master_id, exceptions=exceptions)
            if master is None:
                if master_id not in deleted:
                    deleted.append(master_id)
            else:
                items[master_id] = master
                # A series read again comes with its live exceptions: where visits are read one by one
                # (work calendars), a visit moved on its own must not fall back to the series' time.
                for exception in exceptions:
                    items.setdefault(exception.remote_id, exception)
                if master_id in deleted:
                    deleted.remove(master_id)
        return ChangeSet(items=list(items.values()), deleted_ids=deleted, cursor=token, full=False)

    async def _series(self, master_id: str, master: dict[str, Any] | None = None, *,
                      exceptions: list[RemoteItem] | None = None) -> RemoteItem | None:
        """A series with every cancelled occurrence folded in as an EXDATE; None when it is deleted.
        `exceptions`, when given, receives the series' live exceptions (read in the same listing)."""
        if master is None:
            try:
                master = await self._get_raw(master_id)
            except NotFound:
                return None
        if master.get("status") == "cancelled":
            return None
        if not master.get("iCalUID"):
            return to_remote_item(master)
        related, _ = await self._list({"iCalUID": str(master["iCalUID"]), "showDeleted": "true"})
        exdates = [
            when
            for r in related
            if r.get("status") == "cancelled"
            and r.get("recurringEventId") == master_id
            and (when := original_start(r)) is not None
        ]
        if exceptions is not None:
            exceptions.extend(to_remote_item(r) for r in related
                              if r.get("status") != "cancelled" and r.get("recurringEventId") == master_id)
        return to_remote_item(master, extra_exdates=exdates)

    async def _get_raw(self, remote_id: str) -> dict[str, Any]:
        body = await self.api.request("GET", f"{self.events_path}/{quote(remote_id, safe='')}")
        if not body or not isinstance(body.get("id"), str):
            raise BadPayload("google: events.get returned no event", provider=PROVIDER)
        return body

    async def get(self, remote_id: str) -> RemoteItem:
        """One event; NotFound when it is gone (Google keeps deleted events as "cancelled")."""
        raw = await self._get_raw(remote_id)
        if raw.get("status") == "cancelled":
            raise NotFound("google: event was deleted", provider=PROVIDER)
        if raw.get("recurrence"):
            series = await self._series(remote_id, raw)
            if series is None:
                raise NotFound("google: series was deleted", provider=PROVIDER)
            return series
        return to_remote_item(raw)

    # --- occurrences (sync.contract.OccurrenceIds) ---------------------------------------------------------
    def occurrence_id(self, series_remote_id: str, occurrence: EventData) -> str:
        """Google's instance id of one occurrence (by its original start, as Google names it)."""
        if occurrence.recurrence_id is None:
            raise BadPayload("google: an occurrence without its original start", provider=PROVIDER)
        all_day = occurrence.all_day if occurrence.recurrence_all_day is None else occurrence.recurrence_all_day
        return instance_id(series_remote_id, occurrence.recurrence_id, all_day, occurrence.tzid)

    def series_id(self, remote_id: str) -> str | None:
        found = INSTANCE.match(remote_id)
        return found["series"] if found else None

    # --- attachments (files in Drive) ------------------------------------------------------------------
    async def _attached(self, remote_id: str) -> list[dict[str, Any]]:
        raw = await self._get_raw(remote_id)
        if raw.get("status") == "cancelled":
            raise NotFound("google: event was deleted", provider=PROVIDER)
        found = raw.get("attachments") or []
        return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []

    async def attachments(self, remote_id: str) -> list[AttachmentInfo]:
        """The Drive files attached to the event (NotGranted without Drive access; NotFound when gone)."""
        self.drive.check_grant()
        return await self.drive.list(await self._attached(remote_id))

    async def attachment(self, remote_id: str, attachment_id: str, max_bytes: int) -> AttachmentFile:
        """One attached Drive file with its bytes, while it is still attached to the event."""
        self.drive.check_grant()
        if attachment_id not in {a.get("fileId") for a in await self._attached(remote_id)}:
            raise NotFound("google: that file is no longer attached to the event", provider=PROVIDER)
        read = await self.drive.info(attachment_id)
        if read is None:
            raise NotFound("google: the attached file is gone from Drive or not shared", provider=PROVIDER)
        return await self.drive.fetch(read[0], read[1], max_bytes)

    async def free_busy(self, window: Window) -> list[BusyInterval]:
        """Busy intervals from freebusy.query (opaque, not cancelled events)."""
        body = (
            await self.api.request(
                "POST",
                "/calendar/v3/freeBusy",
                json={
                    "timeMin": _rfc3339(window.start),
                    "timeMax": _rfc3339(window.end),
                    "items": [{"id": self.calendar_id}],
                },
            )
            or {}
        )
        entry = (body.get("calendars") or {}).get(self.calendar_id)
        if not isinstance(entry, dict):
            raise BadPayload("google: freeBusy answer lacks the calendar", provider=PROVIDER)
        if entry.get("errors"):
            reason = entry["errors"][0].get("reason") if isinstance(entry["errors"], list) else None
            if reason == "notFound":
                raise NotFound("google: calendar not found for free/busy", provider=PROVIDER)
            raise Refused(f"google: free/busy refused ({reason})", provider=PROVIDER)
        try:
            return [
                BusyInterval(
                    datetime.fromisoformat(b["start"].replace("Z", "+00:00")),
                    datetime.fromisoformat(b["end"].replace("Z", "+00:00")),
                )
                for b in entry.get("busy", [])
            ]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BadPayload("google: unreadable free/busy interval", provider=PROVIDER) from None

    # --- writing -----------------------------------------------------------------------------------------
    def _writable(self) -> None:
        if self.capabilities.read_only:
            raise Refused("google: this calendar is read-only for clinicbot", provider=PROVIDER)

    async def create(self, event: EventData, idempotency_key: str) -> RemoteItem:
        """Insert with an id derived from the key; a retry raises AlreadyExists (409)."""
        self._writable()
        if event.recurrence_id is not None:
            return await self._write_exception(event)
        for generation in range(1, MAX_ID_GENERATIONS + 1):
            key = idempotency_key if generation == 1 else f"{idempotency_key}#{generation}"
            event_id = event_id_for(key)
            body = {"id": event_id, **to_google(event)}
            try:
                created = await self.api.request(
                    "POST", self.events_path, params={"sendUpdates": self.send_updates}, json=body
                )
            except AlreadyExists:
                # Google keeps a deleted event's id as a "cancelled" tombstone and answers 409 for it
                # for good: a copy deleted by hand is re-created under the key's next id.
                if (await self._get_raw(event_id)).get("status") != "cancelled":
                    raise AlreadyExists(
                        "google: an event with this key exists", remote_id=event_id, provider=PROVIDER
                    ) from None
                continue
            if not created:
                raise BadPayload("google: events.insert returned no event", provider=PROVIDER)
            return to_remote_item(created)
        raise Refused(
            f"google: the copy was deleted by hand {MAX_ID_GENERATIONS} times; clinicbot stops re-creating it",
            provider=PROVIDER,
        )

    async def _write_exception(self, event: EventData) -> RemoteItem:
        """Override one occurrence: Google edits exceptions through the instance id of the series."""
        assert event.recurrence_id is not None
        found, _ = await self._list({"privateExtendedProperty": f"{PRIVATE_UID}={event.uid}"})
        master = next((r for r in found if r.get("recurrence") and not r.get("recurringEventId")), None)
        if master is None:
            raise NotFound("google: the series of this occurrence is not on the calendar", provider=PROVIDER)
        target = instance_id(str(master["id"]), event.recurrence_id, event.all_day, event.tzid)
        return await self._patch(target, event, None)

    async def update(self, remote_id: str, event: EventData, if_match: str | None) -> RemoteItem:
        """Patch with If-Match; WrongEtag on 412, NotFound when the event is gone."""
        self._writable()
        return await self._patch(remote_id, event, if_match)

    async def _patch(self, remote_id: str, event: EventData, if_match: str | None) -> RemoteItem:
        if if_match is None:
            # Patching a deleted event would silently bring it back; pin the write to what we just read.
            current = await self._get_raw(remote_id)
            if current.get("status") == "cancelled":
                raise NotFound("google: event was deleted", provider=PROVIDER)
            if_match = current.get("etag")
        body = to_google(event, for_patch=True, exception=event.recurrence_id is not None or "_" in remote_id)
        updated = await self.api.request(
            "PATCH",
            f"{self.events_path}/{quote(remote_id, safe='')}",
            params={"sendUpdates": self.send_updates},
            json=body,
            headers={"If-Match": if_match} if if_match else None,
        )
        if not updated:
            raise BadPayload("google: events.patch returned no event", provider=PROVIDER)
        if updated.get("recurrence"):
            series = await self._series(str(updated["id"]), updated)
            if series is not None:
                return series
        return to_remote_item(updated)

    async def delete(self, remote_id: str, if_match: str | None) -> None:
        """Delete; NotFound when already gone (404, or 410 for a deleted one), WrongEtag on 412."""
        self._writable()
        await self.api.request(
            "DELETE",
            f"{self.events_path}/{quote(remote_id, safe='')}",
            params={"sendUpdates": self.send_updates},
            headers={"If-Match": if_match} if if_match else None,
        )

    # --- push channels (see adapters.google.push) -------------------------------------------------------
    async def watch(self, channel_id: str, address: str, token: str, ttl_seconds: int) -> dict[str, Any]:
        """Open an events.watch channel; returns Google's channel resource."""
        body = await self.api.request(
            "POST",
            f"{self.events_path}/watch",
            json={
                "id": channel_id,
                "type": "web_hook",
                "address": address,
                "token": token,
                "params": {"ttl": str(ttl_seconds)},
            },
        )
        if not body or body.get("id") != channel_id or not body.get("resourceId"):
            raise BadPayload("google: events.watch returned no channel", provider=PROVIDER)
        return body

    async def stop_watch(self, channel_id: str, resource_id: str) -> None:
        """channels.stop; a channel Google no longer knows counts as stopped."""
        try:
            await self.api.request(
                "POST", "/calendar/v3/channels/stop", json={"id": channel_id, "resourceId": resource_id}
            )
        except NotFound:
            return

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.drive.api.aclose()
