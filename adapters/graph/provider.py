"""GraphCalendar: the CalendarProvider for one Outlook calendar.

- Reading uses `calendarView/delta` over a window, following nextLink to the deltaLink; the cursor
  keeps the deltaLink with the window it covers. Graph fixes a round's window at its first call, so
  the round starts a week wider than asked and the cursor is reused while the asked window fits.
  410 / SyncStateNotFound raises CursorExpired: the engine then runs one full resync.
- calendarView returns occurrences, never series masters, so this provider exchanges single
  occurrences (`series=False`) and the core expands recurring appointments before writing.
- Creates carry a transactionId derived from the idempotency key: Graph answers a repeat with
  the event created first. Updates and deletes send If-Match with the @odata.etag (412 -> WrongEtag).
- `apply` sends many writes as JSON $batch (see client.py) for the outbox.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.graph.client import BatchItem, GraphClient
from adapters.graph.errors import PROVIDER
from adapters.graph.mapping import (
    EXPAND_PROPERTIES,
    event_from_graph,
    event_to_graph,
    is_ours,
    parse_graph_datetime,
)
from sync.contract import (
    AlreadyExists,
    AttachmentFile,
    AttachmentInfo,
    BadPayload,
    BusyInterval,
    CalendarCapabilities,
    CursorExpired,
    ProviderError,
    Refused,
)
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["Create", "Delete", "GraphCalendar", "Update", "transaction_id"]

#: Extra days a delta round covers past the asked window, so a daily sliding window reuses it.
WINDOW_SLACK = timedelta(days=7)
SCHEDULE_SPAN = timedelta(days=60)
_TXN_NAMESPACE = uuid.UUID("5b0f4c8e-3f7a-4c43-9a61-2f0c1d9e6b11")


def transaction_id(idempotency_key: str) -> str:
    """A GUID-shaped transactionId that is the same for every retry of one write."""
    return str(uuid.uuid5(_TXN_NAMESPACE, idempotency_key))


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Create:
    event: EventData
    idempotency_key: str


@dataclass(frozen=True)
class Update:
    remote_id: str
    event: EventData
    if_match: str | None


@dataclass(frozen=True)
class Delete:
    remote_id: str
    if_match: str | None


WriteOp = Create | Update | Delete


#: The @odata.type of an attachment that is a file (item and reference attachments are not).
FILE_ATTACHMENT = "#microsoft.graph.fileAttachment"


def _attachment_info(entry: dict[str, Any]) -> AttachmentInfo:
    size = entry.get("size")
    return AttachmentInfo(str(entry["id"]), str(entry.get("name") or "attachment"),
                          str(entry.get("contentType") or "application/octet-stream").lower(),
                          size if isinstance(size, int) and size >= 0 else 0)


class GraphCalendar:
    """One Outlook calendar, addressed as "me/calendar", "users/{id}/calendars/{cid}" ..."""

    name = "graph"

    def __init__(
        self,
        client: GraphClient,
        calendar_path: str,
        *,
        read_only: bool = False,
        show_as_free: bool = False,
        schedule_address: str | None = None,
    ) -> None:
        self.client = client
        self.path = calendar_path.strip("/")
        self.show_as_free = show_as_free
        #: SMTP address for getSchedule (work accounts, default calendar); None -> calendarView.
        self.schedule_address = schedule_address
        self.capabilities = CalendarCapabilities(
            read_only=read_only, push=True, free_busy=True, delta=True, series=False
        )

    @property
    def mailbox_path(self) -> str:
        return self.path.split("/calendar", 1)[0]

    # --- reading ------------------------------------------------------------------------------------
    async def changes(self, cursor: str | None, window: Window) -> ChangeSet:
        """Changed items since `cursor` via calendarView/delta; the whole window when cursor is None."""
        link, full = None, cursor is None
        if cursor is not None:
            link, start, end = _read_cursor(cursor)
            if not (start <= window.start and window.end <= end) or not self.client.own_url(link):
                raise CursorExpired(f"{PROVIDER}: cursor does not cover the sync window", provider=PROVIDER)
            params = None
        else:
            start, end = window.start, window.end + WINDOW_SLACK
            params = {"startDateTime": _utc(start), "endDateTime": _utc(end)}
        result = ChangeSet(full=full)
        ours: list[int] = []
        delta_link: str | None = None
        async for page in self.client.pages(link or f"/{self.path}/calendarView/delta", params):
            for entry in page["value"]:
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                    raise BadPayload(f"{PROVIDER}: delta entry without an id", provider=PROVIDER)
                if "@removed" in entry:
                    result.deleted_ids.append(entry["id"])
                else:
                    result.items.append(event_from_graph(entry))
                    if is_ours(entry):
                        ours.append(len(result.items) - 1)
            delta_link = page.get("@odata.deltaLink") or delta_link
        if not delta_link or not self.client.own_url(delta_link):
            raise BadPayload(f"{PROVIDER}: delta round ended without a usable deltaLink", provider=PROVIDER)
        await self._with_properties(result.items, ours)
        result.cursor = json.dumps({"v": 1, "start": start.isoformat(), "end": end.isoformat(), "link": delta_link})
        return result

    async def _with_properties(self, items: list[RemoteItem], positions: list[int]) -> None:
        """Re-read our own changed copies with their extended properties (uid, appointment id)."""
        if not positions:
            return
        requests = [
            BatchItem(str(n), "GET", f"{self._event_url(items[n].remote_id)}?$expand={EXPAND_PROPERTIES}")
            for n in positions
        ]
        answers = await self.client.batch(requests, sequential=False)
        for request in requests:
            answer = answers[request.id]
            if answer.status == 200:
                items[int(request.id)] = event_from_graph(answer.body)
            elif answer.status not in (404, 410):  # deleted since the delta page: keep what delta said
                error = answer.error(request)
                if error is not None:
                    raise error

    async def get(self, remote_id: str) -> RemoteItem:
        """Read one event with clinicbot's extended property; NotFound when it is gone."""
        body = await self.client.json("GET", self._event_url(remote_id), params={"$expand": EXPAND_PROPERTIES})
        return event_from_graph(body)

    async def attachments(self, remote_id: str) -> list[AttachmentInfo]:
        """The event's file attachments (item and reference attachments are not files we can serve)."""
        body = await self.client.json("GET", f"{self._event_url(remote_id)}/attachments",
                                      params={"$select": "id,name,contentType,size,isInline"})
        out: list[AttachmentInfo] = []
        for entry in body.get("value") or []:
            if isinstance(entry, dict) and entry.get("@odata.type") == FILE_ATTACHMENT and isinstance(
                    entry.get("id"), str):
                out.append(_attachment_info(entry))
        return out

    async def attachment(self, remote_id: str, attachment_id: str, max_bytes: int) -> AttachmentFile:
        """One file attachment with its bytes (`contentBytes`, base64), size checked before decoding."""
        if not attachment_id or "/" in attachment_id or "?" in attachment_id:
            raise Refused(f"{PROVIDER}: malformed attachment id", provider=PROVIDER)
        body = await self.client.json("GET", f"{self._event_url(remote_id)}/attachments/{attachment_id}")
        if body.get("@odata.type") != FILE_ATTACHMENT:
            raise Refused(f"{PROVIDER}: that attachment is not a file", provider=PROVIDER)
        info = _attachment_info(body)
        raw = body.get("contentBytes")
        if info.size > max_bytes or not isinstance(raw, str) or len(raw) > (max_bytes + 2) // 3 * 4 + 4:
            raise Refused(f"{PROVIDER}: the file is larger than {max_bytes} bytes", provider=PROVIDER)
        try:
            content = base64.b64decode(raw, validate=True)
        except ValueError:
            raise BadPayload(f"{PROVIDER}: attachment content is not base64", provider=PROVIDER) from None
        return AttachmentFile(info, content)

    async def free_busy(self, window: Window) -> list[BusyInterval]:
        """Busy intervals: getSchedule for work accounts, calendarView for personal ones."""
        if self.schedule_address:
            return await self._schedule(window)
        busy: list[BusyInterval] = []
        params = {"startDateTime": _utc(window.start), "endDateTime": _utc(window.end)}
        async for page in self.client.pages(f"/{self.path}/calendarView", params):
            for entry in page["value"]:
                item = event_from_graph(entry)
                if not item.event.transparent and item.event.status != "cancelled":
                    busy.append(BusyInterval(item.event.start, item.event.end))
        return sorted(busy, key=lambda b: b.start)

    async def _schedule(self, window: Window) -> list[BusyInterval]:
        busy: set[tuple[datetime, datetime]] = set()
        span_start = window.start
        while span_start < window.end:
            # getSchedule answers for at most 62 days at a time.
            span_end = min(window.end, span_start + SCHEDULE_SPAN)
            body = {
                "schedules": [self.schedule_address],
                "startTime": {"dateTime": _utc(span_start).rstrip("Z"), "timeZone": "UTC"},
                "endTime": {"dateTime": _utc(span_end).rstrip("Z"), "timeZone": "UTC"},
                "availabilityViewInterval": 60,
            }
            answer = await self.client.json("POST", f"/{self.mailbox_path}/calendar/getSchedule", json=body)
            for schedule in answer.get("value") or []:
                if schedule.get("error"):
                    code = schedule["error"].get("responseCode")
                    raise BadPayload(f"{PROVIDER}: getSchedule: {code}", provider=PROVIDER)
                for item in schedule.get("scheduleItems") or []:
                    if item.get("status") not in ("free", "workingElsewhere"):
                        busy.add((parse_graph_datetime(item.get("start")), parse_graph_datetime(item.get("end"))))
            span_start = span_end
        return [BusyInterval(s, e) for s, e in sorted(busy)]

    # --- writing ------------------------------------------------------------------------------------
    async def create(self, event: EventData, idempotency_key: str) -> RemoteItem:
        """Create `event`; a retry of the same write returns the event the first try made.

        Graph answers a repeated transactionId with the event created first. When that event is
        not the one we are writing now (the key was used for other content, or the event was
        edited since), the key is spent: AlreadyExists, as for a client-chosen id elsewhere.
        """
        self._writable()
        body = {
            **event_to_graph(event, show_as_free=self.show_as_free),
            "transactionId": transaction_id(idempotency_key),
        }
        answer = await self.client.json("POST", f"/{self.path}/events", json=body, creating=True)
        item = event_from_graph(answer)
        if not _same_write(item.event, event):
            raise AlreadyExists(f"{PROVIDER}: idempotency key already used for another event", provider=PROVIDER)
        return self._with_id(item, event)

    async def update(self, remote_id: str, event: EventData, if_match: str | None) -> RemoteItem:
        """PATCH the event with If-Match; WrongEtag when someone changed it meanwhile."""
        self._writable()
        headers = {"If-Match": if_match} if if_match else None
        answer = await self.client.json(
            "PATCH",
            self._event_url(remote_id),
            json=event_to_graph(event, show_as_free=self.show_as_free),
            headers=headers,
        )
        return self._with_id(event_from_graph(answer), event)

    async def delete(self, remote_id: str, if_match: str | None) -> None:
        """DELETE the event; NotFound when it is already gone."""
        self._writable()
        await self.client.request(
            "DELETE", self._event_url(remote_id), headers={"If-Match": if_match} if if_match else None
        )

    async def apply(self, ops: list[WriteOp]) -> list[RemoteItem | ProviderError | None]:
        """Many writes in $batch requests; per op a RemoteItem (create/update), None (delete) or the error."""
        self._writable()
        items = [self._batch_item(str(n), op) for n, op in enumerate(ops)]
        answers = await self.client.batch(items)
        out: list[RemoteItem | ProviderError | None] = []
        for batch_item, op in zip(items, ops, strict=True):
            answer = answers[batch_item.id]
            error = answer.error(batch_item)
            if error is not None:
                out.append(error)
            elif isinstance(op, Delete):
                out.append(None)
            else:
                try:
                    stored = event_from_graph(answer.body)
                    if isinstance(op, Create) and not _same_write(stored.event, op.event):
                        raise AlreadyExists(f"{PROVIDER}: idempotency key already used", provider=PROVIDER)
                    out.append(self._with_id(stored, op.event))
                except ProviderError as exc:
                    out.append(exc)
        return out

    def _batch_item(self, key: str, op: WriteOp) -> BatchItem:
        if isinstance(op, Create):
            body = {
                **event_to_graph(op.event, show_as_free=self.show_as_free),
                "transactionId": transaction_id(op.idempotency_key),
            }
            return BatchItem(key, "POST", f"/{self.path}/events", body, creating=True)
        headers = {"If-Match": op.if_match} if op.if_match else {}
        if isinstance(op, Update):
            return BatchItem(
                key,
                "PATCH",
                self._event_url(op.remote_id),
                event_to_graph(op.event, show_as_free=self.show_as_free),
                headers,
            )
        return BatchItem(key, "DELETE", self._event_url(op.remote_id), None, headers)

    def _event_url(self, remote_id: str) -> str:
        if not remote_id or "/" in remote_id or "?" in remote_id:
            raise Refused(f"{PROVIDER}: malformed event id", provider=PROVIDER)
        return f"/{self.path}/events/{remote_id}"

    @staticmethod
    def _with_id(item: RemoteItem, written: EventData) -> RemoteItem:
        # Graph's write answers omit extended properties, so the mapping falls back to iCalUId;
        # but we just wrote our uid (and appointment id) into them, and reads return those. The
        # item must hash as it will read back, or every sync takes our copy for a hand edit.
        changes: dict[str, object] = {}
        if item.event.uid != written.uid:
            changes["uid"] = written.uid
        if item.event.clinicbot_id is None and written.clinicbot_id is not None:
            changes["clinicbot_id"] = written.clinicbot_id
        if changes:
            return RemoteItem(item.remote_id, item.etag, item.event.with_changes(**changes))
        return item

    def _writable(self) -> None:
        if self.capabilities.read_only:
            raise Refused(f"{PROVIDER}: this calendar is read-only", provider=PROVIDER)

    async def aclose(self) -> None:
        await self.client.aclose()


def _same_write(stored: EventData, written: EventData) -> bool:
    """Whether a create's answer is the event we sent (fields Graph keeps exactly)."""
    return (
        stored.summary == written.summary
        and stored.start == written.start
        and stored.end == written.end
        and stored.all_day == written.all_day
        and stored.location == written.location
    )


def _read_cursor(cursor: str) -> tuple[str, datetime, datetime]:
    try:
        data: dict[str, Any] = json.loads(cursor)
        return str(data["link"]), datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"])
    except (ValueError, KeyError, TypeError):
        raise CursorExpired(f"{PROVIDER}: unreadable cursor", provider=PROVIDER) from None
