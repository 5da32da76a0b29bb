"""Calendly as a BookingSource: scheduled events and their invitee, a reschedule chain kept as one booking.

Calendly reschedules by cancelling the invitee's event (`rescheduled: true`, naming the new
invitee) and creating a new event whose invitee names the old one. clinicbot keeps one booking
through the chain: its id is the first event's uuid, `fetch` follows `new_invitee` forward to the
event that holds the booking now, and a listing reports the newest event of each chain under the
first one's id, leaving out the events a reschedule cancelled. So the two deliveries of a reschedule
become one move of one appointment, never a cancel plus a new booking.
Calendly has no reschedule API: a reschedule from chat is refused with the invitee's own
reschedule link, to send to the client. Cancel is `POST /scheduled_events/{uuid}/cancellation`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.calendly.client import PROVIDER, CalendlyClient
from sync.contract import BadPayload, BookingCapabilities, CalendarInfo, NotFound, Refused
from sync.contract.items import NO_SHOW, ChangeSet, EventData, RemoteItem, Window

__all__ = ["MAX_CHAIN", "CalendlyBookings", "event_uuid", "uuid_of"]

#: Reschedules followed at most (a longer chain is refused as malformed).
MAX_CHAIN = 20


def uuid_of(uri: str) -> str:
    """The last path segment of a Calendly resource URI."""
    return uri.rstrip("/").rsplit("/", 1)[-1]


def event_uuid(invitee_uri: str) -> str:
    """The scheduled event's uuid inside an invitee URI (.../scheduled_events/<uuid>/invitees/<uuid>)."""
    parts = invitee_uri.rstrip("/").split("/")
    if len(parts) < 4 or parts[-2] != "invitees" or parts[-4] != "scheduled_events":
        raise BadPayload(f"calendly: {invitee_uri!r} is not an invitee URI", provider=PROVIDER)
    return parts[-3]


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise BadPayload(f"calendly: bad time {value!r}", provider=PROVIDER)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise BadPayload(f"calendly: bad time {value!r}", provider=PROVIDER) from None


def _event(root: str, event: dict[str, Any], invitee: dict[str, Any]) -> EventData:
    members = [m for m in event.get("event_memberships") or [] if isinstance(m, dict)]
    location = event.get("location") or {}
    place = str(location.get("location") or location.get("join_url") or location.get("type") or "") \
        if isinstance(location, dict) else ""
    notes = "\n".join(f"{q.get('question')}: {q.get('answer')}" for q in invitee.get("questions_and_answers") or []
                      if isinstance(q, dict) and q.get("answer"))
    cancelled = event.get("status") == "canceled" or invitee.get("status") == "canceled"
    service = str(event.get("name") or "") or None
    name = str(invitee.get("name") or "") or None
    return EventData(
        uid=root, summary=" - ".join(p for p in (service, name) if p) or "Calendly booking",
        start=_time(event.get("start_time")), end=_time(event.get("end_time")), tzid=invitee.get("timezone") or None,
        description=notes, location=place, status="cancelled" if cancelled else "confirmed",
        categories=(NO_SHOW,) if invitee.get("no_show") else (), client_name=name,
        client_email=str(invitee.get("email") or "") or None, service=service,
        # The number the invitee gave for text reminders: the phone Calendly has for them.
        client_phone=str(invitee.get("text_reminder_number") or "").strip() or None,
        staff_ref=str(members[0].get("user") or "") or None if members else None,
    )


class CalendlyBookings:
    """The scheduled events of one Calendly account (sync.contract.BookingSource)."""

    name = PROVIDER
    capabilities = BookingCapabilities(fetch=True, reschedule=False, cancel=True)

    def __init__(self, client: CalendlyClient, *, routing_forms: bool = False) -> None:
        self.client = client
        #: Routing form submissions are read as leads (the connection's `routing_forms: on`).
        self.routing_forms = routing_forms
        self._organization: str | None = None
        self._user: str | None = None

    async def me(self) -> tuple[str, str]:
        """(user URI, organization URI) of the token's owner."""
        if self._user is None or self._organization is None:
            me = (await self.client.request("GET", "/users/me")).get("resource") or {}
            self._user, self._organization = str(me.get("uri") or ""), str(me.get("current_organization") or "")
            if not self._user or not self._organization:
                raise BadPayload("calendly: /users/me names no user or organization", provider=PROVIDER)
        return self._user, self._organization

    async def staff(self) -> list[CalendarInfo]:
        _, org = await self.me()
        found: list[CalendarInfo] = []
        async for member in self.client.collection("/organization_memberships", {"organization": org, "count": "100"}):
            user = member.get("user") or {}
            if isinstance(user, dict) and user.get("uri"):
                found.append(CalendarInfo(remote_id=str(user["uri"]), name=str(user.get("name") or user["uri"]),
                                          timezone=user.get("timezone") or None, primary=not found))
        return found

    async def _invitee(self, event_id: str) -> dict[str, Any]:
        async for invitee in self.client.collection(f"/scheduled_events/{event_id}/invitees", {"count": "1"}):
            return invitee
        return {}

    async def changes(self, cursor: str | None, window: Window, staff: str | None = None) -> ChangeSet:
        """The newest event of every booking chain in `window`, under the chain's first event id."""
        params = {"min_start_time": window.start.isoformat(), "max_start_time": window.end.isoformat(),
                  "count": "100", "sort": "start_time:asc"}
        if staff:
            params["user"] = staff
        else:
            params["organization"] = (await self.me())[1]
        events: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        async for event in self.client.collection("/scheduled_events", params):
            event_id = uuid_of(str(event.get("uri") or ""))
            events[event_id] = (event, await self._invitee(event_id))
        items: dict[str, RemoteItem] = {}
        for event_id, (event, invitee) in events.items():
            new = invitee.get("new_invitee")
            if invitee.get("rescheduled") and invitee.get("status") == "canceled" and new:
                if event_uuid(str(new)) in events:
                    continue  # superseded by the event the reschedule made, listed too
                # The new event is outside the window (or not listed yet): the booking is where it is now.
                root = await self._root(event_id, invitee, events)
                items[root] = await self.fetch(root)
                continue
            root = await self._root(event_id, invitee, events)
            items[root] = RemoteItem(root, f"{event_id}:{event.get('updated_at', '')}", _event(root, event, invitee))
        return ChangeSet(items=list(items.values()), full=True)

    async def _root(self, event_id: str, invitee: dict[str, Any],
                    known: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> str:
        """The first event of the reschedule chain `event_id` ends."""
        current, person = event_id, invitee
        for _ in range(MAX_CHAIN):
            old = person.get("old_invitee")
            if not old:
                return current
            current = event_uuid(str(old))
            if current in known:
                person = known[current][1]
            else:
                try:
                    person = (await self.client.request(
                        "GET", f"/scheduled_events/{current}/invitees/{uuid_of(str(old))}")).get("resource") or {}
                except NotFound:
                    return current
        raise BadPayload(f"calendly: reschedule chain of {event_id} is longer than {MAX_CHAIN}", provider=PROVIDER)

    async def _current(self, root: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """The event that holds the booking `root` now (following reschedules forward), with its invitee."""
        event_id = root
        for _ in range(MAX_CHAIN):
            event = (await self.client.request("GET", f"/scheduled_events/{event_id}")).get("resource") or {}
            invitee = await self._invitee(event_id)
            new = invitee.get("new_invitee")
            if not (invitee.get("rescheduled") and new):
                return event_id, event, invitee
            event_id = event_uuid(str(new))
        raise BadPayload(f"calendly: reschedule chain of {root} is longer than {MAX_CHAIN}", provider=PROVIDER)

    async def fetch(self, external_id: str) -> RemoteItem:
        event_id, event, invitee = await self._current(external_id)
        return RemoteItem(external_id, f"{event_id}:{event.get('updated_at', '')}", _event(external_id, event, invitee))

    async def reschedule(self, external_id: str, start: datetime, end: datetime, version: str | None) -> RemoteItem:
        """Calendly has no reschedule API: refused, with the invitee's own reschedule link to send the client."""
        _, _, invitee = await self._current(external_id)
        link = invitee.get("reschedule_url")
        raise Refused(
            "Calendly has no reschedule API; send the client their own reschedule link"
            + (f": {link}" if link else ""), provider=PROVIDER)

    async def cancel(self, external_id: str, reason: str, version: str | None) -> RemoteItem:
        event_id, event, _ = await self._current(external_id)
        if event.get("status") != "canceled":
            await self.client.request("POST", f"/scheduled_events/{event_id}/cancellation",
                                      json={"reason": reason[:500]})
        return await self.fetch(external_id)

    async def aclose(self) -> None:
        await self.client.aclose()
