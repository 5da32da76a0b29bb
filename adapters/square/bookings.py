"""Square Appointments as a BookingSource: bookings read through the Bookings API, written back by version.

Square lists bookings only within 31 days per query, so a window is read in 31-day slices, each
paginated. A booking's `version` is its etag: a reschedule (`PUT /v2/bookings/{id}`) and a cancel
(`POST /v2/bookings/{id}/cancel`) send it, and Square refuses a stale one (WrongEtag): the outbox
re-reads the booking and plans again, it never forces. Idempotency keys are derived from the
booking, its version and the change, so a retried write is recognised by Square, never doubled.
Client names come from the Customers API and service names from the Catalog, read once per sync.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.square.client import PROVIDER, SquareClient
from sync.contract import BadPayload, BookingCapabilities, CalendarInfo, NotFound, ProviderError
from sync.contract.items import NO_SHOW, ChangeSet, EventData, EventStatus, RemoteItem, Window

__all__ = ["SLICE", "SquareBookings", "booking_event", "parse_time"]

#: Square's longest start_at range per list query.
SLICE = timedelta(days=31)
_CANCELLED = frozenset({"CANCELLED_BY_CUSTOMER", "CANCELLED_BY_SELLER", "DECLINED"})


def parse_time(value: Any) -> datetime:
    """An RFC 3339 time from Square as an aware UTC datetime; BadPayload names the bad value."""
    if not isinstance(value, str) or not value:
        raise BadPayload(f"square: missing time {value!r}", provider=PROVIDER)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadPayload(f"square: bad time {value!r}", provider=PROVIDER) from None
    if parsed.tzinfo is None:
        raise BadPayload(f"square: time without zone {value!r}", provider=PROVIDER)
    return parsed.astimezone(UTC)


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(raw: str) -> tuple[EventStatus, tuple[str, ...]]:
    if raw in _CANCELLED:
        return "cancelled", (raw.lower(),)
    if raw == "NO_SHOW":
        return "confirmed", (NO_SHOW,)
    if raw == "PENDING":
        return "tentative", ()
    return "confirmed", ()


def booking_event(booking: dict[str, Any], *, client: dict[str, str] | None = None, service: str | None = None,
                  tzid: str | None = None) -> EventData:
    """One Square booking as EventData (staff_ref = the first segment's team member)."""
    booking_id = booking.get("id")
    if not isinstance(booking_id, str) or not booking_id:
        raise BadPayload("square: a booking without an id", provider=PROVIDER)
    start = parse_time(booking.get("start_at"))
    segments = [s for s in booking.get("appointment_segments") or [] if isinstance(s, dict)]
    minutes = sum(int(s.get("duration_minutes") or 0) for s in segments) or 30
    status, categories = _status(str(booking.get("status") or "ACCEPTED"))
    notes = "\n".join(n for n in (booking.get("customer_note"), booking.get("seller_note")) if n)
    name = (client or {}).get("name") or None
    return EventData(
        uid=booking_id, summary=" - ".join(p for p in (service, name) if p) or "Square booking",
        start=start, end=start + timedelta(minutes=minutes), tzid=tzid, description=notes,
        location=str(booking.get("location_id") or ""), status=status, categories=categories,
        client_name=name, client_email=(client or {}).get("email") or None, service=service,
        client_phone=(client or {}).get("phone") or None,
        staff_ref=str(segments[0].get("team_member_id") or "") or None if segments else None,
    )


class SquareBookings:
    """The bookings of one Square seller account (sync.contract.BookingSource)."""

    name = PROVIDER
    capabilities = BookingCapabilities(fetch=True, reschedule=True, cancel=True)

    def __init__(self, client: SquareClient, *, location_id: str | None = None, tzid: str | None = None) -> None:
        self.client = client
        self.location_id = location_id
        self.tzid = tzid
        self._customers: dict[str, dict[str, str]] = {}
        self._services: dict[str, str | None] = {}

    async def staff(self) -> list[CalendarInfo]:
        """The bookable team members, one booking calendar each."""
        found: list[CalendarInfo] = []
        async for page in self.client.pages("/v2/bookings/team-member-booking-profiles", "team_member_booking_profiles",
                                            {"bookable_only": "true", "limit": "100"}):
            for profile in page:
                member = str(profile.get("team_member_id") or "")
                if member:
                    found.append(CalendarInfo(remote_id=member, name=str(profile.get("display_name") or member),
                                              timezone=self.tzid, primary=not found))
        return found

    async def changes(self, cursor: str | None, window: Window, staff: str | None = None) -> ChangeSet:
        """Every booking in `window` (of `staff` when given), read in 31-day slices; a full listing."""
        items: list[RemoteItem] = []
        start = window.start
        while start < window.end:
            end = min(window.end, start + SLICE)
            params = {"start_at_min": _stamp(start), "start_at_max": _stamp(end), "limit": "100"}
            if staff:
                params["team_member_id"] = staff
            if self.location_id:
                params["location_id"] = self.location_id
            async for page in self.client.pages("/v2/bookings", "bookings", params):
                for booking in page:
                    items.append(await self._item(booking))
            start = end
        return ChangeSet(items=items, full=True)

    async def fetch(self, external_id: str) -> RemoteItem:
        body = await self.client.request("GET", f"/v2/bookings/{external_id}")
        booking = body.get("booking")
        if not isinstance(booking, dict):
            raise NotFound(f"square: booking {external_id} not found", provider=PROVIDER)
        return await self._item(booking)

    async def reschedule(self, external_id: str, start: datetime, end: datetime, version: str | None) -> RemoteItem:
        """Move the booking to `start`, keeping its segments (the last one takes a change of length)."""
        current = await self.client.request("GET", f"/v2/bookings/{external_id}")
        booking = current.get("booking") or {}
        segments = [dict(s) for s in booking.get("appointment_segments") or [] if isinstance(s, dict)]
        minutes = int((end - start).total_seconds() // 60)
        if segments:
            others = sum(int(s.get("duration_minutes") or 0) for s in segments[:-1])
            segments[-1]["duration_minutes"] = max(5, minutes - others)
        change: dict[str, Any] = {"start_at": _stamp(start)}
        if segments:
            change["appointment_segments"] = segments
        if version is not None:
            change["version"] = _version(version)
        key = _key(external_id, version, "reschedule", _stamp(start), str(minutes))
        body = await self.client.request("PUT", f"/v2/bookings/{external_id}",
                                         json={"idempotency_key": key, "booking": change})
        return await self._item(_booking(body))

    async def cancel(self, external_id: str, reason: str, version: str | None) -> RemoteItem:
        payload: dict[str, Any] = {"idempotency_key": _key(external_id, version, "cancel")}
        if version is not None:
            payload["booking_version"] = _version(version)
        body = await self.client.request("POST", f"/v2/bookings/{external_id}/cancel", json=payload)
        return await self._item(_booking(body))

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _item(self, booking: dict[str, Any]) -> RemoteItem:
        client = await self._customer(str(booking.get("customer_id") or ""))
        segments = [s for s in booking.get("appointment_segments") or [] if isinstance(s, dict)]
        service = await self._service(str(segments[0].get("service_variation_id") or "")) if segments else None
        event = booking_event(booking, client=client, service=service, tzid=self.tzid)
        return RemoteItem(event.uid, str(booking.get("version", "")) or None, event)

    async def _customer(self, customer_id: str) -> dict[str, str]:
        if not customer_id:
            return {}
        if customer_id not in self._customers:
            try:
                found = (await self.client.request("GET", f"/v2/customers/{customer_id}")).get("customer") or {}
            except NotFound:
                found = {}
            name = " ".join(p for p in (found.get("given_name"), found.get("family_name")) if p)
            self._customers[customer_id] = {"name": name, "email": str(found.get("email_address") or ""),
                                            "phone": str(found.get("phone_number") or "")}
        return self._customers[customer_id]

    async def _service(self, variation_id: str) -> str | None:
        if not variation_id:
            return None
        if variation_id not in self._services:
            try:
                body = await self.client.request("GET", f"/v2/catalog/object/{variation_id}",
                                                 params={"include_related_objects": "true"})
            except ProviderError:
                self._services[variation_id] = None
                return None
            self._services[variation_id] = _service_name(body)
        return self._services[variation_id]


def _service_name(body: dict[str, Any]) -> str | None:
    """The item's name from a catalog lookup of a variation (related objects), else the variation's name."""
    for related in body.get("related_objects") or []:
        data = related.get("item_data") if isinstance(related, dict) else None
        if isinstance(data, dict) and data.get("name"):
            return str(data["name"])[:200]
    obj = body.get("object") or {}
    data = obj.get("item_variation_data") if isinstance(obj, dict) else None
    return str(data["name"])[:200] if isinstance(data, dict) and data.get("name") else None


def _booking(body: dict[str, Any]) -> dict[str, Any]:
    booking = body.get("booking")
    if not isinstance(booking, dict):
        raise BadPayload("square: the answer carries no booking", provider=PROVIDER)
    return booking


def _version(version: str) -> int:
    try:
        return int(version)
    except ValueError:
        raise BadPayload(f"square: booking version {version!r} is not a number", provider=PROVIDER) from None


def _key(*parts: str | None) -> str:
    """An idempotency key of the change itself: a retry sends the same one, a new change another."""
    return "clinicbot-" + hashlib.sha256("|".join(p or "" for p in parts).encode()).hexdigest()[:40]
