"""YouCanBookMe as a BookingSource: each booking page (profile) is one booking calendar.

Bookings are listed per profile and start window in pages (`page`, `pageSize`; a short page is the
last) [I]; times are ISO 8601 with their offset and the booker's zone beside them. YouCanBookMe has
no reschedule call in what is documented, so a reschedule from chat is refused with that reason
(the booker's own link moves it); a cancel is `PATCH /bookings/{id}` with `cancelled: true` [I],
read first so a retry sends nothing twice, and refused with WrongEtag when the booking changed since
the plan saw it (the etag is a hash of what the booking says).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from adapters.youcanbookme.client import PROVIDER, YouCanBookMeClient
from sync.contract import BadPayload, BookingCapabilities, CalendarInfo, NotFound, Refused, WrongEtag
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["PAGE_SIZE", "YouCanBookMeBookings", "booking_event"]

PAGE_SIZE = 100


def _when(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadPayload(f"youcanbookme: bad time {str(value)[:40]!r}", provider=PROVIDER) from None
    if parsed.tzinfo is None:
        raise BadPayload(f"youcanbookme: time without an offset {str(value)[:40]!r}", provider=PROVIDER)
    return parsed


def booking_event(booking: dict[str, Any]) -> EventData:
    """One booking as EventData (staff_ref = its profile id)."""
    if not booking.get("id"):
        raise BadPayload("youcanbookme: a booking without an id", provider=PROVIDER)
    start, end = _when(booking.get("startsAt")), _when(booking.get("endsAt"))
    if end < start:
        raise BadPayload(f"youcanbookme: booking {booking['id']} ends before it starts", provider=PROVIDER)
    name = " ".join(str(p) for p in (booking.get("firstName"), booking.get("lastName")) if p) or None
    service = str(booking.get("title") or "") or None
    return EventData(
        uid=str(booking["id"]), summary=" - ".join(p for p in (service, name) if p) or "YouCanBookMe booking",
        start=start.astimezone(UTC), end=end.astimezone(UTC), tzid=str(booking.get("timeZone") or "") or None,
        description=str(booking.get("notes") or ""), status="cancelled" if booking.get("cancelled") else "confirmed",
        client_name=name, client_email=str(booking.get("email") or "") or None, service=service,
        staff_ref=str(booking.get("profileId") or "") or None,
    )


def _etag(event: EventData) -> str:
    return hashlib.sha256(f"{event.content_hash()}/{event.staff_ref}".encode()).hexdigest()[:32]


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class YouCanBookMeBookings:
    """The bookings of one YouCanBookMe account (sync.contract.BookingSource)."""

    name = PROVIDER
    capabilities = BookingCapabilities(fetch=True, reschedule=False, cancel=True)

    def __init__(self, client: YouCanBookMeClient, *, webhook_token: str = "") -> None:
        self.client = client
        #: The connection's secret path token: its webhook channel's secret.
        self.webhook_token = webhook_token

    async def staff(self) -> list[CalendarInfo]:
        found = await self.client.request("GET", "profiles")
        if not isinstance(found, list):
            raise BadPayload("youcanbookme: profiles is not a list", provider=PROVIDER)
        rows = [p for p in found if isinstance(p, dict) and p.get("id")]
        return [CalendarInfo(remote_id=str(p["id"]), name=str(p.get("title") or p["id"]), primary=i == 0)
                for i, p in enumerate(rows)]

    async def changes(self, cursor: str | None, window: Window, staff: str | None = None) -> ChangeSet:
        """Every booking starting in `window` (cancelled ones too), page by page: a full listing."""
        items: dict[str, RemoteItem] = {}
        page = 0
        while True:
            params = {"startsAfter": _stamp(window.start), "startsBefore": _stamp(window.end),
                      "page": str(page), "pageSize": str(PAGE_SIZE)}
            if staff:
                params["profileId"] = staff
            found = await self.client.request("GET", "bookings", params=params)
            if not isinstance(found, list):
                raise BadPayload("youcanbookme: bookings is not a list", provider=PROVIDER)
            for raw in found:
                if isinstance(raw, dict):
                    item = self._item(raw)
                    if window.start <= item.event.start < window.end:
                        items[item.remote_id] = item
            if len(found) < PAGE_SIZE:
                return ChangeSet(items=list(items.values()), full=True)
            page += 1

    async def fetch(self, external_id: str) -> RemoteItem:
        if not external_id or "/" in external_id or len(external_id) > 80:
            raise NotFound(f"youcanbookme: {external_id[:40]!r} is not a booking id", provider=PROVIDER)
        found = await self.client.request("GET", f"bookings/{external_id}")
        if not isinstance(found, dict):
            raise BadPayload("youcanbookme: booking is not an object", provider=PROVIDER)
        return self._item(found)

    async def reschedule(self, external_id: str, start: datetime, end: datetime, version: str | None) -> RemoteItem:
        refused = Refused("youcanbookme: no reschedule API; the booker moves it with their own link",
                          provider=PROVIDER)
        refused.user_message = ("YouCanBookMe bookings cannot be moved from chat; the client can move it with the "
                                "link in their confirmation email, or staff move it in YouCanBookMe.")
        raise refused

    async def cancel(self, external_id: str, reason: str, version: str | None) -> RemoteItem:
        current = await self.fetch(external_id)
        if current.event.status == "cancelled":
            return current
        if version is not None and current.etag != version:
            raise WrongEtag(f"youcanbookme: booking {external_id} changed meanwhile", provider=PROVIDER)
        done = await self.client.request("PATCH", f"bookings/{external_id}",
                                         json={"cancelled": True, "cancelReason": reason[:500]})
        return self._item(done) if isinstance(done, dict) else await self.fetch(external_id)

    async def aclose(self) -> None:
        await self.client.aclose()

    def _item(self, raw: dict[str, Any]) -> RemoteItem:
        event = booking_event(raw)
        return RemoteItem(event.uid, _etag(event), event)
