"""Setmore as a BookingSource: each staff member is one booking calendar; no webhooks, so it is polled.

Setmore has no change cursor: a poll re-reads the window (`startDate`/`endDate` as dd-mm-yyyy, one
staff member, `customerDetails=true`) page by page (`cursor` in the answer [I]), and the core diffs it
against its links. A reschedule is `PUT /bookingapi/appointments/{key}` with the new times, a cancel
`DELETE` of the appointment (Setmore keeps no cancelled state [I]); both read the appointment first,
so a retry sends nothing twice and a change made in Setmore meanwhile gives WrongEtag.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.setmore.client import PROVIDER, SetmoreClient
from sync.contract import BadPayload, BookingCapabilities, CalendarInfo, NotFound, WrongEtag
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["SetmoreBookings", "appointment_event"]

#: Pages followed at most per listing (a runaway cursor must not loop for ever).
MAX_PAGES = 200


def _when(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadPayload(f"setmore: bad time {str(value)[:40]!r}", provider=PROVIDER) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def appointment_event(appt: dict[str, Any]) -> EventData:
    """One Setmore appointment as EventData (staff_ref = its staff_key)."""
    key = str(appt.get("key") or "")
    if not key:
        raise BadPayload("setmore: an appointment without a key", provider=PROVIDER)
    start, end = _when(appt.get("start_time")), _when(appt.get("end_time"))
    if end < start:
        raise BadPayload(f"setmore: appointment {key} ends before it starts", provider=PROVIDER)
    customer = _object(appt.get("customer"))
    name = " ".join(str(p) for p in (customer.get("first_name"), customer.get("last_name")) if p) or None
    service = str(appt.get("label") or "") or None
    return EventData(
        uid=key, summary=" - ".join(p for p in (service, name) if p) or "Setmore appointment",
        start=start.astimezone(UTC), end=end.astimezone(UTC), description=str(appt.get("comment") or ""),
        client_name=name, client_email=str(customer.get("email_id") or "") or None, service=service,
        staff_ref=str(appt.get("staff_key") or "") or None,
    )


def _etag(event: EventData) -> str:
    return hashlib.sha256(f"{event.content_hash()}/{event.staff_ref}".encode()).hexdigest()[:32]


class SetmoreBookings:
    """The appointments of one Setmore account (sync.contract.BookingSource)."""

    name = PROVIDER
    capabilities = BookingCapabilities(fetch=True, reschedule=True, cancel=True)

    def __init__(self, client: SetmoreClient) -> None:
        self.client = client

    async def staff(self) -> list[CalendarInfo]:
        data = await self.client.request("GET", "bookingapi/staffs")
        staffs = data.get("staffs") if isinstance(data, dict) else None
        if not isinstance(staffs, list):
            raise BadPayload("setmore: staffs is not a list", provider=PROVIDER)
        rows = [s for s in staffs if isinstance(s, dict) and s.get("key")]
        return [CalendarInfo(remote_id=str(s["key"]), primary=i == 0,
                             name=" ".join(str(p) for p in (s.get("first_name"), s.get("last_name")) if p)
                             or str(s["key"])) for i, s in enumerate(rows)]

    async def changes(self, cursor: str | None, window: Window, staff: str | None = None) -> ChangeSet:
        """The window re-read, page by page: a full listing the core diffs against its links."""
        items: dict[str, RemoteItem] = {}
        params = {"startDate": window.start.astimezone(UTC).strftime("%d-%m-%Y"),
                  "endDate": window.end.astimezone(UTC).strftime("%d-%m-%Y"), "customerDetails": "true"}
        if staff:
            params["staff_key"] = staff
        for _ in range(MAX_PAGES):
            data = await self.client.request("GET", "bookingapi/appointments", params=params)
            found = data.get("appointments") if isinstance(data, dict) else None
            if not isinstance(found, list):
                raise BadPayload("setmore: appointments is not a list", provider=PROVIDER)
            for raw in found:
                if isinstance(raw, dict):
                    item = self._item(raw)
                    if window.start <= item.event.start < window.end:
                        items[item.remote_id] = item
            following = data.get("cursor") if isinstance(data, dict) else None
            if not following:
                return ChangeSet(items=list(items.values()), full=True)
            params = {**params, "cursor": str(following)}
        raise BadPayload(f"setmore: more than {MAX_PAGES} pages of appointments", provider=PROVIDER)

    async def fetch(self, external_id: str) -> RemoteItem:
        return self._item(await self._raw(external_id))

    async def _raw(self, external_id: str) -> dict[str, Any]:
        if not external_id or "/" in external_id or len(external_id) > 100:
            raise NotFound(f"setmore: {external_id[:40]!r} is not an appointment key", provider=PROVIDER)
        data = await self.client.request("GET", f"bookingapi/appointments/{external_id}")
        found = data.get("appointment") if isinstance(data, dict) else None
        if not isinstance(found, dict):
            raise BadPayload("setmore: appointment is not an object", provider=PROVIDER)
        return found

    async def reschedule(self, external_id: str, start: datetime, end: datetime, version: str | None) -> RemoteItem:
        raw = await self._raw(external_id)
        current = self._item(raw)
        if current.event.start == start.astimezone(UTC) and current.event.end == end.astimezone(UTC):
            return current  # a retry after the write landed
        if version is not None and current.etag != version:
            raise WrongEtag(f"setmore: appointment {external_id} changed meanwhile", provider=PROVIDER)
        body = {"staff_key": raw.get("staff_key"), "service_key": raw.get("service_key"),
                "customer_key": raw.get("customer_key"), "start_time": _stamp(start), "end_time": _stamp(end)}
        await self.client.request("PUT", f"bookingapi/appointments/{external_id}", json=body)
        return await self.fetch(external_id)

    async def cancel(self, external_id: str, reason: str, version: str | None) -> RemoteItem:
        try:
            current = await self.fetch(external_id)
        except NotFound:
            gone = datetime.now(UTC).replace(microsecond=0)
            event = EventData(uid=external_id, summary="Setmore appointment", start=gone, end=gone + timedelta(0),
                              status="cancelled")
            return RemoteItem(external_id, None, event)  # cancelled before: Setmore keeps nothing of it
        if version is not None and current.etag != version:
            raise WrongEtag(f"setmore: appointment {external_id} changed meanwhile", provider=PROVIDER)
        await self.client.request("DELETE", f"bookingapi/appointments/{external_id}")
        return RemoteItem(external_id, None, current.event.with_changes(status="cancelled"))

    async def aclose(self) -> None:
        await self.client.aclose()

    def _item(self, raw: dict[str, Any]) -> RemoteItem:
        event = appointment_event(raw)
        return RemoteItem(event.uid, _etag(event), event)
