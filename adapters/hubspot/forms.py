"""HubSpot form submissions read as leads, by polling the Forms API.

HubSpot has no webhook subscription for form submissions (its webhook subscriptions cover CRM
objects, associations, privacy deletions and conversations: developers.hubspot.com, "Webhooks
API"), so each form the connection names (its `forms` option: form GUIDs, comma-separated) is read
with `GET /form-integrations/v1/submissions/forms/{form_guid}` (scope `forms`; `limit` at most 50,
`after` for the next page; newest first: developers.hubspot.com, "Get submissions for a form").
Pages are followed only while every submission on them is at or after the caller's mark, so a poll
that finds nothing new costs one request per form.

A submission's `values` are {name, value} pairs; `email`, `firstname`, `lastname`, `phone` and
`message` are HubSpot's own field names, and the fields for the service, the preferred practitioner,
location and times are the connection's options (`form_service_field`...; defaults below). A
multiple-choice value comes as one value joined by ';'. Its `conversionId` is the submission id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from adapters.hubspot.client import PROVIDER, HubSpotClient
from sync.contract import BadPayload
from sync.contract.leads import FormSubmission, LeadInput

__all__ = ["FIELD_DEFAULTS", "FORM_OPTIONS", "PAGE_LIMIT", "HubSpotForms", "configured_forms", "read_submission"]

#: The most submissions HubSpot answers a page with.
PAGE_LIMIT = 50
#: Pages followed at most in one poll (a loop guard: 10,000 submissions since the last poll).
MAX_PAGES = 200
#: The connection option naming each lead field, and its default HubSpot field name.
FIELD_DEFAULTS = {
    "form_service_field": "service",
    "form_practitioner_field": "preferred_practitioner",
    "form_location_field": "preferred_location",
    "form_times_field": "preferred_times",
}
#: The connection options of the forms (the connection's config keys).
FORM_OPTIONS = ("forms", *FIELD_DEFAULTS)


def configured_forms(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The form GUIDs a connection's `forms` option names (comma or space separated), each once."""
    raw = str(config.get("forms") or "")
    seen: list[str] = []
    for part in raw.replace(",", " ").split():
        if part not in seen:
            seen.append(part)
    return tuple(seen)


def read_submission(item: Mapping[str, Any], fields: Mapping[str, str]) -> FormSubmission:
    """One listed submission as a lead; `fields` maps FIELD_DEFAULTS' options to the form's field names."""
    conversion = str(item.get("conversionId") or "")
    submitted = item.get("submittedAt")
    if not conversion or not isinstance(submitted, int) or isinstance(submitted, bool):
        raise BadPayload("hubspot: a form submission without conversionId or submittedAt", provider=PROVIDER)
    values: dict[str, list[str]] = {}
    for pair in item.get("values") or []:
        if isinstance(pair, dict) and isinstance(pair.get("name"), str):
            values.setdefault(pair["name"], []).append(str(pair.get("value") or "").strip())

    def one(name: str) -> str:
        return "; ".join(v for v in values.get(name, []) if v)

    def many(name: str) -> tuple[str, ...]:
        return tuple(p.strip() for v in values.get(name, []) for p in v.split(";") if p.strip())[:10]

    def field(option: str) -> str:
        return fields.get(option) or FIELD_DEFAULTS[option]

    name = " ".join(p for p in (one("firstname"), one("lastname")) if p)
    lead = LeadInput(submission_id=f"{conversion}"[:200], name=name, email=one("email"), phone=one("phone"),
                     service=one(field("form_service_field")), practitioner=one(field("form_practitioner_field")),
                     location=one(field("form_location_field")), preferred_times=many(field("form_times_field")),
                     message=one("message"))
    return FormSubmission(submitted, lead)


class HubSpotForms:
    """The LeadFeed of one HubSpot connection."""

    def __init__(self, client: HubSpotClient, fields: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.fields = dict(fields or {})

    async def submissions(self, form_id: str, since_ms: int) -> list[FormSubmission]:
        path = f"/form-integrations/v1/submissions/forms/{quote(form_id, safe='')}"
        query = {"limit": str(PAGE_LIMIT)}
        found: list[FormSubmission] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            answer = await self.client.request("GET", path, params=query)
            older = False
            for item in answer.get("results") or []:
                if not isinstance(item, dict):
                    continue
                submission = read_submission(item, self.fields)
                if submission.submitted_ms < since_ms:
                    older = True
                    break
                found.append(submission)
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if older or not after or str(after) in seen:
                break
            seen.add(str(after))
            query["after"] = str(after)
        found.sort(key=lambda s: s.submitted_ms)
        return found

    async def aclose(self) -> None:
        await self.client.aclose()
