"""TimeTap as a BookingSource: each staff member (professional) is one booking calendar, polled.

`GET /appointmentList/reportWithCount` takes a date range of at most 93 days, `pageNumber` and
`pageSize`, and answers {"count", "data"} [C-third-party]; a window is read in 93-day spans, page by
page, and the core diffs the listing against its links (no change cursor). Times come as epoch
milliseconds (UTC) beside local HHmm; the epoch ones are used. A cancel is `PUT
/appointment/{id}/status/CANCELLED` [I], read first; a reschedule is not offered (its API for it
could not be verified) and is refused with that reason.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.timetap.client import PROVIDER, TimeTapClient
from sync.contract import BadPayload, BookingCapabilities, CalendarInfo, NotFound, Refused, WrongEtag
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["PAGE_SIZE", "SPAN_DAYS", "TimeTapBookings", "appointment_event"]

#: TimeTap refuses a report range longer than 93 days.
SPAN_DAYS = 93
PAGE_SIZE = 100
_STATUS = {"CANCELLED": "cancelled", "CANCELED": "cancelled"}


def _epoch(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise BadPayload(f"timetap: bad epoch time {str(value)[:30]!r}", provider=PROVIDER) from None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def appointment_event(appt: dict[str, Any]) -> EventData:
    """One TimeTap appointment as EventData (staff_ref = its professional's id)."""
    appt_id = str(appt.get("calendarId") or "")
    if not appt_id:
        raise BadPayload("timetap: an appointment without a calendarId", provider=PROVIDER)
    start, end = _epoch(appt.get("startDateTimeEpoch")), _epoch(appt.get("endDateTimeEpoch"))
    if end < start:
        raise BadPayload(f"timetap: appointment {appt_id} ends before it starts", provider=PROVIDER)
    client, staff, reason = (_object(appt.get(k)) for k in ("client", "staff", "reason"))
    name = " ".join(str(p) for p in (client.get("firstName"), client.get("lastName")) if p) or None
    service = str(reason.get("reasonDesc") or "") or None
    status = str(appt.get("status") or "").upper()
    return EventData(
        uid=appt_id, summary=" - ".join(p for p in (service, name) if p) or "TimeTap appointment",
        start=start, end=end, tzid=str(appt.get("timeZone") or "") or None, description=str(appt.get("note") or ""),
        status="cancelled" if status in _STATUS else "confirmed",
        categories=("no_show",) if status == "NO_SHOW" else (), client_name=name,
        client_email=str(client.get("emailAddress") or "") or None, service=service,
        staff_ref=str(staff.get("professionalId") or appt.get("professionalId") or "") or None,
    )


def _etag(event: EventData) -> str:
    return hashlib.sha256(f"{event.content_hash()}/{event.staff_ref}".encode()).hexdigest()[:32]


class TimeTapBookings:
    """The appointments of one TimeTap business (sync.contract.BookingSource)."""

    name = PROVIDER
    capabilities = BookingCapabilities(fetch=True, reschedule=False, cancel=True)

    def __init__(self, client: TimeTapClient) -> None:
        self.client = client

    async def staff(self) -> list[CalendarInfo]:
        found = await self.client.request("GET", "staff")
        if not isinstance(found, list):
            raise BadPayload("timetap: staff is not a list", provider=PROVIDER)
        rows = [s for s in found if isinstance(s, dict) and s.get("professionalId")]
        return [CalendarInfo(remote_id=str(s["professionalId"]), name=str(s.get("fullName") or s["professionalId"]),
                             timezone=str(s.get("timeZone") or "") or None, primary=i == 0)
                for i, s in enumerate(rows)]

    async def changes(self, cursor: str | None, window: Window, staff: str | None = None) -> ChangeSet:
        """Every appointment in `window`, read in 93-day spans and pages: a full listing."""
        items: dict[str, RemoteItem] = {}
        low = window.start
        while low < window.end:
            high = min(window.end, low + timedelta(days=SPAN_DAYS))
            page = 1
            while True:
                params = {"startDate": low.astimezone(UTC).date().isoformat(),
                          "endDate": high.astimezone(UTC).date().isoformat(),
                          "pageNumber": str(page), "pageSize": str(PAGE_SIZE)}
                if staff:
                    params["staffIdList"] = staff
                body = await self.client.request("GET", "appointmentList/reportWithCount", params=params)
                rows = body.get("data") if isinstance(body, dict) else None
                if not isinstance(rows, list):
                    raise BadPayload("timetap: the report has no data list", provider=PROVIDER)
                for raw in rows:
                    if isinstance(raw, dict):
                        item = self._item(raw)
                        if window.start <= item.event.start < window.end:
                            items[item.remote_id] = item
                total = body.get("count") if isinstance(body.get("count"), int) else 0
                if len(rows) < PAGE_SIZE or page * PAGE_SIZE >= total:
                    break
                page += 1
            low = high
        return ChangeSet(items=list(items.values()), full=True)

    async def fetch(self, external_id: str) -> RemoteItem:
        if not (external_id.isascii() and external_id.isdigit()) or len(external_id) > 18:  # not "²"
            raise NotFound(f"timetap: {external_id[:40]!r} is not an appointment id", provider=PROVIDER)
        found = await self.client.request("GET", f"appointment/{external_id}")
        if not isinstance(found, dict):
            raise BadPayload("timetap: appointment is not an object", provider=PROVIDER)
        return self._item(found)

    async def reschedule(self, external_id: str, start: datetime, end: datetime, version: str | None) -> RemoteItem:
        refused = Refused("timetap: no verified reschedule API", provider=PROVIDER)
        refused.user_message = "TimeTap appointments are moved in TimeTap (or by the client's own link)."
        raise refused

    async def cancel(self, external_id: str, reason: str, version: str | None) -> RemoteItem:
        current = await self.fetch(external_id)
        if current.event.status == "cancelled":
            return current
        if version is not None and current.etag != version:
            raise WrongEtag(f"timetap: appointment {external_id} changed meanwhile", provider=PROVIDER)
        done = await self.client.request("PUT", f"appointment/{external_id}/status/CANCELLED",
                                         json={"cancelReason": reason[:500]})
        return self._item(done) if isinstance(done, dict) and done.get("calendarId") else await self.fetch(external_id)

    async def aclose(self) -> None:
        await self.client.aclose()

    def _item(self, raw: dict[str, Any]) -> RemoteItem:
        event = appointment_event(raw)
        return RemoteItem(event.uid, _etag(event), event)
