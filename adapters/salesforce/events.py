"""Visits logged as Salesforce Events, upserted by clinicbot's visit key, linked to a Contact or Lead.

- The person (WhoId): a Contact with the client's email (SOQL), else an unconverted Lead with it,
  else a new Lead (LastName, FirstName, Email, Company: Salesforce requires one; the client's name
  stands in for a private client).
- The Event: `PATCH /sobjects/Event/<external id field>/<visit key>`, which creates it the first
  time (201) and updates it after (200): the write is idempotent by construction, so a retry after
  a crash or a lost answer never makes a second Event.
- Events have no status: a cancelled visit is shown free with its Subject prefixed "Cancelled:",
  an outcome prefixes "Attended:" or "No-show:", and the Description says it in a line.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any
from urllib.parse import quote

from adapters.salesforce.client import PROVIDER, SalesforceClient, soql_quote
from sync.contract import BadPayload
from sync.contract.crm import CrmRecord, CrmVisit

__all__ = ["PREFIXES", "SalesforceLog", "sf_time"]

PREFIXES = {"booked": "", "cancelled": "Cancelled: ", "attended": "Attended: ", "no_show": "No-show: "}
_STATUS_WORDS = {"booked": "booked", "cancelled": "cancelled", "attended": "attended", "no_show": "no-show"}


def sf_time(value: Any) -> str:
    """A datetime as Salesforce's UTC dateTime (also a SOQL literal)."""
    return str(value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))


class SalesforceLog:
    """One org's visit log (sync.contract.crm.CrmLog)."""

    def __init__(self, client: SalesforceClient, external_id_field: str) -> None:
        self.client = client
        self.field = external_id_field
        #: email -> Contact or Lead id, for the life of this log (one run of the job).
        self._people: dict[str, str] = {}

    async def person(self, visit: CrmVisit) -> str | None:
        """The WhoId for the client: a Contact, else an open Lead, else a new Lead; None without an email."""
        email = (visit.client_email or "").strip().lower()
        if not email:
            return None
        if email in self._people:  # found or made earlier in this run
            return self._people[email]
        self._people[email] = found_id = await self._find_or_make(visit, email)
        return found_id

    async def _find_or_make(self, visit: CrmVisit, email: str) -> str:
        quoted = soql_quote(email)  # values reach SOQL only as escaped literals
        for soql in (f"SELECT Id FROM Contact WHERE Email = {quoted} LIMIT 1",  # noqa: S608
                     f"SELECT Id FROM Lead WHERE Email = {quoted} AND IsConverted = false LIMIT 1"):  # noqa: S608
            async for found in self.client.query(soql):
                return str(found["Id"])
        first, _, last = visit.client_name.strip().rpartition(" ")
        last = last or "Client"
        _, made = await self.client.request("POST", "/sobjects/Lead", json={
            "FirstName": first, "LastName": last, "Email": email, "Company": visit.client_name.strip() or last,
            "Phone": visit.client_phone or None, "LeadSource": "clinicbot"})
        if not isinstance(made, dict) or not made.get("id"):
            raise BadPayload("salesforce: the new Lead has no id", provider=PROVIDER)
        return str(made["id"])

    def _fields(self, visit: CrmVisit, who: str | None) -> dict[str, Any]:
        status = _STATUS_WORDS[visit.stage] + (" (moved)" if visit.stage == "booked" and visit.moved else "")
        fields: dict[str, Any] = {
            "Subject": (PREFIXES[visit.stage] + visit.title)[:255], "StartDateTime": sf_time(visit.start),
            "EndDateTime": sf_time(visit.end), "Location": visit.location[:255] or None,
            "ShowAs": "Free" if visit.stage == "cancelled" else "Busy",
            "Description": f"Visit {status}. Logged by clinicbot for {visit.practice}.",
        }
        if who is not None:
            fields["WhoId"] = who
        if visit.owner_ref:
            fields["OwnerId"] = visit.owner_ref
        return fields

    async def record(self, visit: CrmVisit, known: CrmRecord | None, *, first_try: bool = False) -> CrmRecord:
        """Upsert the Event (idempotent whatever `first_try` says) on the client's Contact or Lead."""
        who = known.person_id if known is not None and known.person_id else await self.person(visit)
        status, answer = await self.client.request(
            "PATCH", f"/sobjects/Event/{self.field}/{quote(visit.key, safe='')}", json=self._fields(visit, who))
        event_id = answer.get("id") if isinstance(answer, dict) else None
        if not event_id:
            if known is not None and status == 204:  # older API versions answer an update with no body
                return CrmRecord(known.remote_id, who)
            raise BadPayload("salesforce: the upsert answer names no Event", provider=PROVIDER)
        return CrmRecord(str(event_id), who)

    async def aclose(self) -> None:
        await self.client.aclose()
