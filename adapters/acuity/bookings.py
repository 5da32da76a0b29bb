"""Acuity Scheduling as a BookingSource: appointments read by date window, written back read-first.

Acuity has no cursor and no versions: a window is listed with `max`, and a window that comes back
full is split in halves until each half fits, so nothing is cut off. The etag is a hash of the
appointment's fields. Acuity has no idempotency key, so every write first reads the appointment:
when it already shows the change (a retry after a lost answer) nothing is sent again; when it
changed since the version the plan saw, WrongEtag sends the outbox back to re-read and re-plan.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.acuity.client import PROVIDER, AcuityClient
from sync.contract import BadPayload, BookingCapabilities, CalendarInfo, WrongEtag
from sync.contract.items import NO_SHOW, ChangeSet, EventData, RemoteItem, Window

__all__ = ["PAGE_MAX", "AcuityBookings", "appointment_event"]

#: Appointments asked for per listing; a full answer splits the window.
PAGE_MAX = 500
#: The smallest window split to (a day of one calendar never holds PAGE_MAX appointments).
MIN_SPLIT = timedelta(hours=1)


def _when(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise BadPayload(f"acuity: missing datetime {value!r}", provider=PROVIDER)
    text = value
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"  # -0800 -> -08:00
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadPayload(f"acuity: bad datetime {value!r}", provider=PROVIDER) from None
    if parsed.tzinfo is None:
        raise BadPayload(f"acuity: datetime without offset {value!r}", provider=PROVIDER)
    return parsed


def appointment_event(appt: dict[str, Any]) -> EventData:
    """One Acuity appointment as EventData (staff_ref = its calendarID)."""
    start = _when(appt.get("datetime"))
    try:
        minutes = int(appt.get("duration") or 0) or 30
    except (TypeError, ValueError):
        minutes = 30
    name = " ".join(p for p in (appt.get("firstName"), appt.get("lastName")) if p) or None
    service = str(appt.get("type") or "") or None
    # Acuity records a no-show by cancelling with noShow: it stays a no-show, not a cancellation.
    no_show = bool(appt.get("noShow"))
    cancelled = bool(appt.get("canceled")) and not no_show
    return EventData(
        uid=str(appt.get("id")), summary=" - ".join(p for p in (service, name) if p) or "Acuity appointment",
        start=start.astimezone(UTC), end=(start + timedelta(minutes=minutes)).astimezone(UTC),
        tzid=str(appt.get("timezone") or "") or None, description=str(appt.get("notes") or ""),
        location=str(appt.get("location") or ""), status="cancelled" if cancelled else "confirmed",
        categories=(NO_SHOW,) if no_show else (), client_name=name,
        client_email=str(appt.get("email") or "") or None, service=service,
        client_phone=str(appt.get("phone") or "").strip() or None,
        staff_ref=str(appt.get("calendarID") or "") or None,
    )


def _etag(appt: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(appt, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class AcuityBookings:
    """The appointments of one Acuity account (sync.contract.BookingSource)."""

    name = PROVIDER
    capabilities = BookingCapabilities(fetch=True, reschedule=True, cancel=True)

    def __init__(self, client: AcuityClient, *, api_key: str = "") -> None:
        self.client = client
        #: The key Acuity signs webhooks with (the account's API key).
        self.api_key = api_key

    async def staff(self) -> list[CalendarInfo]:
        found = await self.client.request("GET", "calendars")
        if not isinstance(found, list):
            raise BadPayload("acuity: calendars is not a list", provider=PROVIDER)
        return [CalendarInfo(remote_id=str(c["id"]), name=str(c.get("name") or c["id"]),
                             timezone=c.get("timezone") or None, primary=i == 0)
                for i, c in enumerate(x for x in found if isinstance(x, dict) and "id" in x)]

    async def changes(self, cursor: str | None, window: Window, staff: str | None = None) -> ChangeSet:
        """Every appointment in `window`, cancelled ones too; a full listing."""
        items: dict[str, RemoteItem] = {}
        for canceled in ("false", "true"):
            for appt in await self._list(window.start, window.end, staff, canceled):
                item = self._item(appt)
                items[item.remote_id] = item
        return ChangeSet(items=list(items.values()), full=True)

    async def _list(self, start: datetime, end: datetime, staff: str | None, canceled: str) -> list[dict[str, Any]]:
        params = {"minDate": _stamp(start), "maxDate": _stamp(end), "max": str(PAGE_MAX), "canceled": canceled,
                  "direction": "ASC", "excludeForms": "true"}
        if staff:
            params["calendarID"] = staff
        found = await self.client.request("GET", "appointments", params=params)
        if not isinstance(found, list):
            raise BadPayload("acuity: appointments is not a list", provider=PROVIDER)
        rows = [a for a in found if isinstance(a, dict)]
        if len(rows) < PAGE_MAX or end - start <= MIN_SPLIT:
            return [a for a in rows if start <= _when(a.get("datetime")) < end]
        middle = start + (end - start) / 2
        return await self._list(start, middle, staff, canceled) + await self._list(middle, end, staff, canceled)

    async def fetch(self, external_id: str) -> RemoteItem:
        found = await self.client.request("GET", f"appointments/{int(external_id)}")
        if not isinstance(found, dict):
            raise BadPayload("acuity: appointment is not an object", provider=PROVIDER)
        return self._item(found)

    async def reschedule(self, external_id: str, start: datetime, end: datetime, version: str | None) -> RemoteItem:
        current = await self.fetch(external_id)
        if current.event.start == start.astimezone(UTC) and current.event.status != "cancelled":
            return current  # a retry after the write landed
        if version is not None and current.etag != version:
            raise WrongEtag(f"acuity: appointment {external_id} changed meanwhile", provider=PROVIDER)
        done = await self.client.request("PUT", f"appointments/{int(external_id)}/reschedule",
                                         params={"admin": "true"}, json={"datetime": start.isoformat()})
        return self._item(done) if isinstance(done, dict) else await self.fetch(external_id)

    async def cancel(self, external_id: str, reason: str, version: str | None) -> RemoteItem:
        current = await self.fetch(external_id)
        if current.event.status == "cancelled":
            return current
        if version is not None and current.etag != version:
            raise WrongEtag(f"acuity: appointment {external_id} changed meanwhile", provider=PROVIDER)
        done = await self.client.request("PUT", f"appointments/{int(external_id)}/cancel",
                                         params={"admin": "true"}, json={"cancelNote": reason[:500]})
        return self._item(done) if isinstance(done, dict) else await self.fetch(external_id)

    async def aclose(self) -> None:
        await self.client.aclose()

    def _item(self, appt: dict[str, Any]) -> RemoteItem:
        event = appointment_event(appt)
        return RemoteItem(event.uid, _etag(appt), event)
