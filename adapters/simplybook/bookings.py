"""SimplyBook.me as a BookingSource: bookings read by date window through the admin API, written back read-first.

`getBookings` takes a date filter and a staff member (`unit_group_id`) and answers the bookings in
one list (no pages documented), cancelled ones included with `booking_type: all`. Times are the
company's local wall-clock time without an offset; the company's zone comes from `getCompanyInfo`.
SimplyBook has no versions and no idempotency key: the etag is a hash of what the booking says, and
every write first reads the booking, so a retry after a lost answer sends nothing twice and a booking
changed since the plan saw it gives WrongEtag (the outbox re-reads and re-plans).

A booking a callback named is read by id (`fetch` of `<id>:<hash>`, the reference the callback
handler queues): where the company's public API key and secret key are configured, through the
public API's `getBookingDetails(id, md5(id + hash + secret))`, which answers only for a hash the
company's own booking has; else through the admin API's `getBookingDetails(id)`, which only sees
the company's own bookings. Either way a callback that lies (another company's id, a made-up hash)
reads nothing, and nothing changes (NotFound).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.simplybook.client import PROVIDER, SimplyBookClient, signed_fetch_sign
from sync.contract import (
    AuthExpired,
    BadPayload,
    BookingCapabilities,
    CalendarInfo,
    NotFound,
    RateLimited,
    Refused,
    WrongEtag,
)
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["PUBLIC_FETCH", "SimplyBookBookings", "booking_event", "callback_ref", "split_ref"]

_FORMAT = "%Y-%m-%d %H:%M:%S"
#: The public API's signed read of one booking (platform-apis.md section 5; third-party code calls it so).
PUBLIC_FETCH = "getBookingDetails"


def callback_ref(booking_id: str, booking_hash: str) -> str:
    """The reference a callback's booking is read by: `<id>:<hash>` (the hash signs the public read)."""
    return f"{booking_id}:{booking_hash}" if booking_hash else booking_id


def split_ref(ref: str) -> tuple[str, str]:
    """(id, hash) of a reference made by `callback_ref` (hash "" for a bare id)."""
    booking_id, _, booking_hash = ref.partition(":")
    return booking_id, booking_hash


def _text(booking: dict[str, Any], *names: str) -> str:
    """The first of `names` the booking has (getBookings and getBookingDetails name some fields differently)."""
    for name in names:
        value = booking.get(name)
        if value not in (None, ""):
            return str(value)
    return ""


def _local(value: str, zone: ZoneInfo) -> datetime:
    try:
        return datetime.strptime(value, _FORMAT).replace(tzinfo=zone)
    except (TypeError, ValueError):
        raise BadPayload(f"simplybook: bad booking time {value!r}", provider=PROVIDER) from None


def booking_event(booking: dict[str, Any], zone: ZoneInfo) -> EventData:
    """One SimplyBook booking as EventData (staff_ref = its unit id, the service provider)."""
    booking_id = _text(booking, "id")
    if not booking_id:
        raise BadPayload("simplybook: a booking without an id", provider=PROVIDER)
    start = _local(_text(booking, "start_date", "start_date_time"), zone)
    end = _local(_text(booking, "end_date", "end_date_time"), zone)
    if end < start:
        raise BadPayload(f"simplybook: booking {booking_id} ends before it starts", provider=PROVIDER)
    name = _text(booking, "client", "client_name") or None
    service = _text(booking, "event", "event_name") or None
    cancelled = _text(booking, "is_confirm", "is_confirmed") == "0"
    return EventData(
        uid=booking_id, summary=" - ".join(p for p in (service, name) if p) or "SimplyBook booking",
        start=start.astimezone(UTC), end=end.astimezone(UTC), tzid=zone.key,
        description=_text(booking, "comment", "description"), location=_text(booking, "location", "location_name"),
        status="cancelled" if cancelled else "confirmed", client_name=name,
        client_email=_text(booking, "client_email") or None, service=service,
        staff_ref=_text(booking, "unit_id") or None,
    )


def _etag(event: EventData) -> str:
    return hashlib.sha256(f"{event.content_hash()}/{event.staff_ref}".encode()).hexdigest()[:32]


class SimplyBookBookings:
    """The bookings of one SimplyBook.me company (sync.contract.BookingSource)."""

    name = PROVIDER
    capabilities = BookingCapabilities(fetch=True, reschedule=True, cancel=True)

    def __init__(self, client: SimplyBookClient, *, public: SimplyBookClient | None = None,
                 secret_key: str = "") -> None:
        self.client = client
        #: The company API with its key, and the secret key that signs a booking read (both or neither).
        self.public = public if public is not None and secret_key else None
        self._secret = secret_key if self.public is not None else ""
        self._zone: ZoneInfo | None = None

    @property
    def company(self) -> str:
        return self.client.company

    async def zone(self) -> ZoneInfo:
        """The company's time zone (its booking times carry none), read once."""
        if self._zone is None:
            info = await self.client.call("getCompanyInfo")
            name = str(info.get("timezone") or "") if isinstance(info, dict) else ""
            try:
                self._zone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise BadPayload(f"simplybook: the company's time zone {name[:60]!r} is not one clinicbot knows",
                                 provider=PROVIDER) from None
        return self._zone

    async def staff(self) -> list[CalendarInfo]:
        """The service providers (units), one booking calendar each."""
        found = await self.client.call("getUnitList")
        units = list(found.values()) if isinstance(found, dict) else found
        if not isinstance(units, list):
            raise BadPayload("simplybook: getUnitList is not a list", provider=PROVIDER)
        zone = await self.zone()
        rows = [u for u in units if isinstance(u, dict) and u.get("id") not in (None, "")]
        return [CalendarInfo(remote_id=str(u["id"]), name=str(u.get("name") or u["id"]), timezone=zone.key,
                             primary=i == 0) for i, u in enumerate(rows)]

    async def changes(self, cursor: str | None, window: Window, staff: str | None = None) -> ChangeSet:
        """Every booking starting in `window` (cancelled ones too), in one call: a full listing."""
        zone = await self.zone()
        query: dict[str, Any] = {
            "date_from": window.start.astimezone(zone).date().isoformat(),
            "date_to": window.end.astimezone(zone).date().isoformat(),
            "booking_type": "all", "order": "start_date",
        }
        if staff:
            query["unit_group_id"] = staff
        found = await self.client.call("getBookings", query)
        if not isinstance(found, list):
            raise BadPayload("simplybook: getBookings is not a list", provider=PROVIDER)
        items: dict[str, RemoteItem] = {}
        for booking in found:
            if not isinstance(booking, dict):
                continue
            item = self._item(booking, zone)
            if window.start <= item.event.start < window.end:
                items[item.remote_id] = item
        return ChangeSet(items=list(items.values()), full=True)

    async def fetch(self, external_id: str) -> RemoteItem:
        """The booking now; `external_id` may be a callback's `<id>:<hash>` (see the module doc)."""
        booking_id, booking_hash = split_ref(external_id)
        if not booking_hash:
            return (await self._current(booking_id))[0]
        if not booking_id.isascii() or not booking_id.isdigit():
            raise NotFound(f"simplybook: {booking_id[:40]!r} is not a booking id", provider=PROVIDER)
        if self.public is None:
            return (await self._current(booking_id))[0]
        sign = signed_fetch_sign(booking_id, booking_hash, self._secret)
        try:
            raw = await self.public.call(PUBLIC_FETCH, int(booking_id), sign)
        except (AuthExpired, RateLimited):
            raise
        except Refused as exc:  # a wrong sign (a made-up hash) or another company's id: nothing to read
            raise NotFound(f"simplybook: booking {booking_id} was not returned for this company's signature "
                           f"({str(exc)[:120]})", provider=PROVIDER) from None
        if not isinstance(raw, dict):
            raise BadPayload(f"simplybook: {PUBLIC_FETCH} is not an object", provider=PROVIDER)
        if _text(raw, "id") != booking_id:
            raise NotFound(f"simplybook: {PUBLIC_FETCH} answered another booking than {booking_id}",
                           provider=PROVIDER)
        return self._item(raw, await self.zone())

    async def reschedule(self, external_id: str, start: datetime, end: datetime, version: str | None) -> RemoteItem:
        current, raw = await self._current(external_id)
        if current.event.start == start.astimezone(UTC) and current.event.end == end.astimezone(UTC) \
                and current.event.status != "cancelled":
            return current  # a retry after the write landed
        if version is not None and current.etag != version:
            raise WrongEtag(f"simplybook: booking {external_id} changed meanwhile", provider=PROVIDER)
        zone = await self.zone()
        local_start, local_end = start.astimezone(zone), end.astimezone(zone)
        await self.client.call(
            "editBook", int(external_id), _text(raw, "event_id"), _text(raw, "unit_id"), _text(raw, "client_id"),
            local_start.date().isoformat(), local_start.strftime("%H:%M:%S"),
            local_end.date().isoformat(), local_end.strftime("%H:%M:%S"), 0, {}, read=False)
        return await self.fetch(external_id)

    async def cancel(self, external_id: str, reason: str, version: str | None) -> RemoteItem:
        current, _ = await self._current(external_id)
        if current.event.status == "cancelled":
            return current
        if version is not None and current.etag != version:
            raise WrongEtag(f"simplybook: booking {external_id} changed meanwhile", provider=PROVIDER)
        await self.client.call("cancelBooking", int(external_id), read=False)
        return await self.fetch(external_id)

    async def aclose(self) -> None:
        await self.client.aclose()
        if self.public is not None:
            await self.public.aclose()

    async def _current(self, external_id: str) -> tuple[RemoteItem, dict[str, Any]]:
        if not (external_id.isascii() and external_id.isdigit()) or len(external_id) > 18:  # not "²"
            raise NotFound(f"simplybook: {external_id[:40]!r} is not a booking id", provider=PROVIDER)
        raw = await self.client.call("getBookingDetails", int(external_id))
        if not isinstance(raw, dict):
            raise BadPayload("simplybook: getBookingDetails is not an object", provider=PROVIDER)
        return self._item(raw, await self.zone()), raw

    def _item(self, booking: dict[str, Any], zone: ZoneInfo) -> RemoteItem:
        event = booking_event(booking, zone)
        return RemoteItem(event.uid, _etag(event), event)
