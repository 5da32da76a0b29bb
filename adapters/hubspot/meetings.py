"""Visits logged as HubSpot meetings, associated with the client's contact (found or made by email).

- The contact: searched by email (`/crm/v3/objects/contacts/search`, EQ), else created; a create
  answered 409 "Contact already exists. Existing ID: <id>" (made meanwhile) takes that id.
- The meeting: `POST /crm/v3/objects/meetings` with hs_timestamp, hs_meeting_title,
  hs_meeting_start_time/end_time, hs_meeting_outcome and the visit's key in the account's
  `clinicbot_visit_key` property, associated with the contact (meeting-to-contact, type 200);
  afterwards `PATCH /crm/v3/objects/meetings/<id>`.
- No duplicate on retry: before any create but a visit's very first, the meeting is searched by the
  key, so a create whose answer was lost (a crash, a timeout) is found and updated instead of made
  twice. HubSpot's search
  index trails writes by a few seconds; the job retries a visit no sooner than that.
- Outcomes: SCHEDULED, RESCHEDULED (moved), CANCELED, COMPLETED (attended), NO_SHOW.
"""

from __future__ import annotations

import re
from typing import Any

from adapters.hubspot.client import PROVIDER, HubSpotClient
from sync.contract import AlreadyExists, BadPayload, NotFound, Refused
from sync.contract.crm import CrmRecord, CrmVisit

__all__ = ["KEY_PROPERTY", "MEETING_TO_CONTACT", "OUTCOMES", "HubSpotLog", "ensure_key_property", "ms"]

#: The meeting property that holds clinicbot's visit key (made at connect, searched before a create).
KEY_PROPERTY = "clinicbot_visit_key"
#: HubSpot's association type id for meeting -> contact (HUBSPOT_DEFINED).
MEETING_TO_CONTACT = 200
OUTCOMES = {"booked": "SCHEDULED", "cancelled": "CANCELED", "attended": "COMPLETED", "no_show": "NO_SHOW"}
_EXISTING = re.compile(r"Existing ID:\s*(\d+)")


def ms(value: Any) -> str:
    """A datetime as HubSpot's epoch milliseconds."""
    return str(int(value.timestamp() * 1000))


async def ensure_key_property(client: HubSpotClient) -> None:
    """Make the meeting property that carries the visit key (409: it is there already)."""
    try:
        await client.request("POST", "/crm/v3/properties/meetings", json={
            "name": KEY_PROPERTY, "label": "clinicbot visit key", "type": "string", "fieldType": "text",
            "groupName": "meetinginformation",
            "description": "Set by clinicbot: the visit this meeting logs. Do not edit."})
    except AlreadyExists:
        return


class HubSpotLog:
    """One HubSpot account's visit log (sync.contract.crm.CrmLog)."""

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client
        self._ensured = False
        #: email -> contact id, for the life of this log (one run of the job): a client with several
        #: visits is looked up once.
        self._people: dict[str, str] = {}

    async def contact(self, visit: CrmVisit) -> str | None:
        """The contact for the visit's client: found by email, else created; None without an email."""
        email = (visit.client_email or "").strip().lower()
        if not email:
            return None
        if email in self._people:  # found or made earlier in this run
            return self._people[email]
        self._people[email] = found_id = await self._find_or_make_contact(visit, email)
        return found_id

    async def _find_or_make_contact(self, visit: CrmVisit, email: str) -> str:
        async for found in self.client.search("contacts", {
                "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
                "properties": ["email"], "limit": 1}):
            return str(found["id"])
        first, _, last = visit.client_name.strip().partition(" ")
        properties = {"email": email, "firstname": first, "lastname": last}
        if visit.client_phone:
            properties["phone"] = visit.client_phone
        try:
            made = await self.client.request("POST", "/crm/v3/objects/contacts", json={"properties": properties})
        except AlreadyExists as exc:
            existing = _EXISTING.search(str(exc))
            if existing is None:
                raise
            return existing.group(1)
        if not made.get("id"):
            raise BadPayload("hubspot: the new contact has no id", provider=PROVIDER)
        return str(made["id"])

    def _properties(self, visit: CrmVisit) -> dict[str, str]:
        outcome = OUTCOMES[visit.stage]
        if visit.stage == "booked" and visit.moved:
            outcome = "RESCHEDULED"
        props = {
            "hs_timestamp": ms(visit.start), "hs_meeting_start_time": ms(visit.start),
            "hs_meeting_end_time": ms(visit.end), "hs_meeting_title": visit.title,
            "hs_meeting_outcome": outcome, "hs_meeting_location": visit.location, KEY_PROPERTY: visit.key,
            "hs_internal_meeting_notes": f"Logged by clinicbot for {visit.practice}",
        }
        if visit.owner_ref:
            props["hubspot_owner_id"] = visit.owner_ref
        return props

    async def find(self, key: str) -> str | None:
        """The meeting already logged for a visit key (a create whose answer was lost)."""
        async for found in self.client.search("meetings", {
                "filterGroups": [{"filters": [{"propertyName": KEY_PROPERTY, "operator": "EQ", "value": key}]}],
                "properties": [KEY_PROPERTY], "limit": 1}):
            return str(found["id"])
        return None

    async def record(self, visit: CrmVisit, known: CrmRecord | None, *, first_try: bool = False) -> CrmRecord:
        try:
            return await self._record(visit, known, first_try)
        except Refused as exc:
            # A private-app connection (made on the CLI, without the sign-in that adds the property),
            # or the property deleted in HubSpot: add it once and write again.
            if KEY_PROPERTY not in str(exc) or self._ensured:
                raise
            await ensure_key_property(self.client)
            self._ensured = True
            return await self._record(visit, known, first_try)

    async def _record(self, visit: CrmVisit, known: CrmRecord | None, first_try: bool) -> CrmRecord:
        person = known.person_id if known is not None and known.person_id else await self.contact(visit)
        props = self._properties(visit)
        if known is not None:
            meeting: str | None = known.remote_id
        else:  # a write sent before may have made the meeting without our hearing: look first
            meeting = None if first_try else await self.find(visit.key)
        if meeting is not None:
            try:
                await self.client.request("PATCH", f"/crm/v3/objects/meetings/{meeting}", json={"properties": props})
                return CrmRecord(meeting, person)
            except NotFound:
                if known is None:
                    raise
                # Deleted in HubSpot: look again by key, then log it anew.
                meeting = await self.find(visit.key)
                if meeting is not None:
                    await self.client.request("PATCH", f"/crm/v3/objects/meetings/{meeting}",
                                              json={"properties": props})
                    return CrmRecord(meeting, person)
        body: dict[str, Any] = {"properties": props}
        if person is not None:
            body["associations"] = [{"to": {"id": person}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": MEETING_TO_CONTACT}]}]
        made = await self.client.request("POST", "/crm/v3/objects/meetings", json=body)
        if not made.get("id"):
            raise BadPayload("hubspot: the new meeting has no id", provider=PROVIDER)
        return CrmRecord(str(made["id"]), person)

    async def aclose(self) -> None:
        await self.client.aclose()

