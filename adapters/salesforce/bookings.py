"""Salesforce as a BookingSource: Events made in Salesforce for a practitioner (their user) are bookings.

Each active Salesforce user is one booking calendar (remote id = user id), mapped with
`staff map salesforce <user id> @practitioner`. Salesforce is polled:

- the first read (no cursor) is the window: Events of the owner starting in it (`full`);
- after that, `SystemModstamp > <cursor>` through `queryAll`, so Events deleted since come back with
  `IsDeleted = true` and are reported deleted; the cursor is the newest SystemModstamp seen. So a
  poll that finds nothing costs one request, whatever the number of Events;
- Events clinicbot logged itself (the external-id field is set) are left out, so a logged visit
  never comes back as a booking.

Change Data Capture (EventChangeEvent) would push the same changes, but only to a streaming
client (Pub/Sub API over gRPC, or CometD), with replay ids to keep; see the folder's README.
Reschedule from chat writes StartDateTime/EndDateTime. An Event has no cancelled state, and
deleting a CRM record from chat is not ours to do: a cancel marks it the way the visit log marks a
cancelled visit (Subject "Cancelled: ...", shown free), and an Event so marked reads as cancelled.
An Event deleted in Salesforce is a cancelled booking too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.salesforce.client import PROVIDER, SalesforceClient, soql_quote
from adapters.salesforce.events import PREFIXES, sf_time
from sync.contract import BadPayload, BookingCapabilities, CalendarInfo, NotFound, WrongEtag
from sync.contract.items import ChangeSet, EventData, RemoteItem, Window

__all__ = ["CANCELLED", "EVENT_FIELDS", "SalesforceEvents"]

#: How a cancelled Event reads (the visit log writes it the same way).
CANCELLED = PREFIXES["cancelled"]

EVENT_FIELDS = ("Id, Subject, StartDateTime, EndDateTime, Location, OwnerId, WhoId, Who.Name, Who.Email, "
                "IsDeleted, SystemModstamp")


def _time(value: Any) -> datetime:
    text = str(value or "")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("+0000", "+00:00")).astimezone(UTC)
    except ValueError:
        raise BadPayload(f"salesforce: bad time {text[:40]!r}", provider=PROVIDER) from None


def _id(value: str) -> str:
    """A Salesforce record id (15 or 18 letters and digits), checked before it goes into a query or a path."""
    if not (value.isascii() and value.isalnum() and len(value) in (15, 18)):
        raise NotFound(f"salesforce: {value[:40]!r} is not a record id", provider=PROVIDER)
    return value


def _event(record: dict[str, Any]) -> EventData:
    found = record.get("Who")
    who: dict[str, Any] = found if isinstance(found, dict) else {}
    start = _time(record.get("StartDateTime"))
    end = _time(record.get("EndDateTime")) if record.get("EndDateTime") else start
    subject = str(record.get("Subject") or "") or "Salesforce event"
    cancelled = subject.startswith(CANCELLED)
    subject = subject.removeprefix(CANCELLED) or "Salesforce event"
    return EventData(uid=str(record["Id"]), summary=subject, start=start, end=max(start, end),
                     status="cancelled" if cancelled else "confirmed",
                     location=str(record.get("Location") or ""), client_name=str(who.get("Name") or "") or None,
                     client_email=str(who.get("Email") or "") or None, service=subject,
                     staff_ref=str(record.get("OwnerId") or "") or None)


class SalesforceEvents:
    """The Events of one org's users (sync.contract.BookingSource), polled on SystemModstamp."""

    name = PROVIDER
    capabilities = BookingCapabilities(fetch=True, reschedule=True, cancel=True)

    def __init__(self, client: SalesforceClient, external_id_field: str) -> None:
        self.client = client
        self.field = external_id_field

    async def staff(self) -> list[CalendarInfo]:
        found: list[CalendarInfo] = []
        async for user in self.client.query("SELECT Id, Name, Email, TimeZoneSidKey FROM User "
                                            "WHERE IsActive = true ORDER BY Name"):
            found.append(CalendarInfo(remote_id=str(user["Id"]), name=str(user.get("Name") or user["Id"]),
                                      timezone=user.get("TimeZoneSidKey") or None, primary=not found))
        return found

    async def changes(self, cursor: str | None, window: Window, staff: str | None = None) -> ChangeSet:
        owner = f" AND OwnerId = {soql_quote(_id(staff))}" if staff else ""
        mine = f"{self.field} = null"
        if cursor:
            since = sf_time(_time(cursor))  # re-formatted: only a dateTime literal reaches the query
            soql = (f"SELECT {EVENT_FIELDS} FROM Event WHERE SystemModstamp > {since} AND {mine}{owner} "  # noqa: S608
                    "ORDER BY SystemModstamp ASC")
        else:
            soql = (f"SELECT {EVENT_FIELDS} FROM Event WHERE StartDateTime >= {sf_time(window.start)} "  # noqa: S608
                    f"AND StartDateTime < {sf_time(window.end)} AND {mine}{owner} ORDER BY SystemModstamp ASC")
        items: list[RemoteItem] = []
        deleted: list[str] = []
        newest = cursor
        async for record in self.client.query(soql, all_rows=bool(cursor)):
            stamp = sf_time(_time(record.get("SystemModstamp")))
            newest = stamp if newest is None or stamp > newest else newest
            if record.get("IsDeleted"):
                deleted.append(str(record["Id"]))
                continue
            items.append(RemoteItem(str(record["Id"]), stamp, _event(record)))
        if newest is None:
            newest = sf_time(datetime.now(UTC))
        return ChangeSet(items=items, deleted_ids=deleted, cursor=newest, full=not cursor)

    async def fetch(self, external_id: str) -> RemoteItem:
        record_id = _id(external_id)
        async for record in self.client.query(f"SELECT {EVENT_FIELDS}, {self.field} FROM Event "  # noqa: S608
                                              f"WHERE Id = {soql_quote(record_id)}"):
            if record.get(self.field):
                break
            return RemoteItem(record_id, sf_time(_time(record.get("SystemModstamp"))), _event(record))
        raise NotFound(f"salesforce: no Event {record_id}", provider=PROVIDER)

    async def reschedule(self, external_id: str, start: datetime, end: datetime, version: str | None) -> RemoteItem:
        current = await self.fetch(external_id)
        if version and current.etag != version:
            raise WrongEtag(f"salesforce: Event {external_id} changed in Salesforce meanwhile", provider=PROVIDER)
        await self.client.request("PATCH", f"/sobjects/Event/{_id(external_id)}",
                                  json={"StartDateTime": sf_time(start), "EndDateTime": sf_time(end)})
        return await self.fetch(external_id)

    async def cancel(self, external_id: str, reason: str, version: str | None) -> RemoteItem:
        current = await self.fetch(external_id)
        if version and current.etag != version:
            raise WrongEtag(f"salesforce: Event {external_id} changed in Salesforce meanwhile", provider=PROVIDER)
        if current.event.status != "cancelled":
            await self.client.request("PATCH", f"/sobjects/Event/{_id(external_id)}", json={
                "Subject": (CANCELLED + current.event.summary)[:255], "ShowAs": "Free"})
        return await self.fetch(external_id)

    async def aclose(self) -> None:
        await self.client.aclose()
