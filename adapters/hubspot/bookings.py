"""HubSpot as a BookingSource: meetings made in HubSpot for a practitioner (their owner) are bookings.

Each HubSpot owner is one booking calendar (remote id = owner id), mapped to a practitioner with
`staff map hubspot <owner id> @practitioner`. A listing is one search per owner and window
(`hubspot_owner_id` EQ, `hs_meeting_start_time` in the window, 100 a page) plus, per page, one
association read and one contact batch read for the clients: requests per page, never per meeting.
Meetings clinicbot logged itself (they carry the visit key) are left out, so a logged visit never
comes back as a second booking. Reschedule and cancel from chat write the meeting's times and its
outcome (CANCELED).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.hubspot.client import PROVIDER, HubSpotClient
from adapters.hubspot.meetings import KEY_PROPERTY, ms
from sync.contract import BadPayload, BookingCapabilities, CalendarInfo, NotFound, WrongEtag
from sync.contract.items import NO_SHOW, ChangeSet, EventData, RemoteItem, Window

__all__ = ["MEETING_PROPERTIES", "HubSpotMeetings"]

MEETING_PROPERTIES = ["hs_meeting_title", "hs_meeting_start_time", "hs_meeting_end_time", "hs_meeting_outcome",
                      "hs_meeting_location", "hubspot_owner_id", "hs_lastmodifieddate", KEY_PROPERTY]


def _time(value: Any) -> datetime:
    text = str(value or "")
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadPayload(f"hubspot: bad time {text[:40]!r}", provider=PROVIDER) from None


def _event(meeting: dict[str, Any], contact: dict[str, Any] | None) -> EventData:
    p = meeting.get("properties") or {}
    start = _time(p.get("hs_meeting_start_time") or p.get("hs_timestamp"))
    end = _time(p.get("hs_meeting_end_time")) if p.get("hs_meeting_end_time") else start
    outcome = str(p.get("hs_meeting_outcome") or "").upper()
    cp = (contact or {}).get("properties") or {}
    name = " ".join(x for x in (cp.get("firstname"), cp.get("lastname")) if x) or None
    title = str(p.get("hs_meeting_title") or "") or "HubSpot meeting"
    return EventData(
        uid=str(meeting["id"]), summary=title, start=start, end=max(end, start),
        location=str(p.get("hs_meeting_location") or ""),
        status="cancelled" if outcome == "CANCELED" else "confirmed",
        categories=(NO_SHOW,) if outcome == "NO_SHOW" else (), client_name=name,
        client_email=str(cp.get("email") or "") or None, client_phone=str(cp.get("phone") or "") or None,
        service=title, staff_ref=str(p.get("hubspot_owner_id") or "") or None,
    )


def _version(meeting: dict[str, Any]) -> str:
    p = meeting.get("properties") or {}
    return str(p.get("hs_lastmodifieddate") or meeting.get("updatedAt") or "")


class HubSpotMeetings:
    """The meetings of one HubSpot account's owners (sync.contract.BookingSource)."""

    name = PROVIDER
    capabilities = BookingCapabilities(fetch=True, reschedule=True, cancel=True)

    def __init__(self, client: HubSpotClient, *, portal_id: str = "", app_secret: str = "") -> None:
        self.client = client
        #: The account (hub) id, and the app's client secret that signs its webhooks (push channels).
        self.portal_id = portal_id
        self.app_secret = app_secret

    async def staff(self) -> list[CalendarInfo]:
        found: list[CalendarInfo] = []
        async for owner in self.client.listing("/crm/v3/owners", {"limit": "100", "archived": "false"}):
            if owner.get("id") is None:
                continue
            name = " ".join(x for x in (owner.get("firstName"), owner.get("lastName")) if x) or str(
                owner.get("email") or owner["id"])
            found.append(CalendarInfo(remote_id=str(owner["id"]), name=name, primary=not found))
        return found

    async def _contacts(self, meeting_ids: list[str]) -> dict[str, dict[str, Any]]:
        """meeting id -> its first associated contact (two batch requests for a whole page)."""
        if not meeting_ids:
            return {}
        links = await self.client.request("POST", "/crm/v4/associations/meetings/contacts/batch/read",
                                          json={"inputs": [{"id": m} for m in meeting_ids]})
        first: dict[str, str] = {}
        for row in links.get("results") or []:
            to = [t for t in row.get("to") or [] if isinstance(t, dict) and t.get("toObjectId") is not None]
            if to and isinstance(row.get("from"), dict):
                first[str(row["from"].get("id"))] = str(to[0]["toObjectId"])
        if not first:
            return {}
        people = await self.client.request("POST", "/crm/v3/objects/contacts/batch/read", json={
            "inputs": [{"id": c} for c in sorted(set(first.values()))],
            "properties": ["email", "firstname", "lastname", "phone"]})
        by_id = {str(c.get("id")): c for c in people.get("results") or [] if isinstance(c, dict)}
        return {m: by_id[c] for m, c in first.items() if c in by_id}

    async def changes(self, cursor: str | None, window: Window, staff: str | None = None) -> ChangeSet:
        """Every meeting of the owner (or of everyone) starting in `window` that clinicbot did not log."""
        filters: list[dict[str, Any]] = [
            {"propertyName": "hs_meeting_start_time", "operator": "GTE", "value": ms(window.start)},
            {"propertyName": "hs_meeting_start_time", "operator": "LT", "value": ms(window.end)},
            {"propertyName": KEY_PROPERTY, "operator": "NOT_HAS_PROPERTY"},
        ]
        if staff:
            filters.append({"propertyName": "hubspot_owner_id", "operator": "EQ", "value": staff})
        items: list[RemoteItem] = []
        async for page in self.client.search_pages("meetings", {
                "filterGroups": [{"filters": filters}], "properties": MEETING_PROPERTIES, "limit": 100,
                "sorts": [{"propertyName": "hs_meeting_start_time", "direction": "ASCENDING"}]}):
            items += await self._items(page)
        return ChangeSet(items=items, full=True)

    async def _items(self, meetings: list[dict[str, Any]]) -> list[RemoteItem]:
        contacts = await self._contacts([str(m["id"]) for m in meetings])
        return [RemoteItem(str(m["id"]), _version(m), _event(m, contacts.get(str(m["id"])))) for m in meetings]

    async def fetch(self, external_id: str) -> RemoteItem:
        if not external_id.isdigit():
            raise NotFound(f"hubspot: no meeting {external_id[:40]!r}", provider=PROVIDER)
        meeting = await self.client.request("GET", f"/crm/v3/objects/meetings/{external_id}",
                                            params={"properties": ",".join(MEETING_PROPERTIES)})
        if (meeting.get("properties") or {}).get(KEY_PROPERTY):
            raise NotFound(f"hubspot: meeting {external_id} is one clinicbot logged", provider=PROVIDER)
        contacts = await self._contacts([external_id])
        return RemoteItem(external_id, _version(meeting), _event(meeting, contacts.get(external_id)))

    async def _check(self, external_id: str, version: str | None) -> None:
        if version:
            current = await self.fetch(external_id)
            if current.etag and current.etag != version:
                raise WrongEtag(f"hubspot: meeting {external_id} changed in HubSpot meanwhile", provider=PROVIDER)

    async def reschedule(self, external_id: str, start: datetime, end: datetime, version: str | None) -> RemoteItem:
        await self._check(external_id, version)
        await self.client.request("PATCH", f"/crm/v3/objects/meetings/{external_id}", json={"properties": {
            "hs_timestamp": ms(start), "hs_meeting_start_time": ms(start), "hs_meeting_end_time": ms(end),
            "hs_meeting_outcome": "RESCHEDULED"}})
        return await self.fetch(external_id)

    async def cancel(self, external_id: str, reason: str, version: str | None) -> RemoteItem:
        await self._check(external_id, version)
        await self.client.request("PATCH", f"/crm/v3/objects/meetings/{external_id}",
                                  json={"properties": {"hs_meeting_outcome": "CANCELED"}})
        return await self.fetch(external_id)

    async def aclose(self) -> None:
        await self.client.aclose()

