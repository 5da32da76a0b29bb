"""A lead as an integration hands it over: a prospective client's form submission, as plain data.

A clinic's website form (the `leadform` integration), a Calendly routing form or a CRM's form
submission each become one `LeadInput`; the core (sync.services.leads) stores it encrypted,
merges a repeat from the same person into their open lead and tells the staff channel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["LEAD_FIELD_LIMIT", "FormSubmission", "LeadFeed", "LeadFeedSlot", "LeadInput", "LeadOutcome"]

#: The longest text kept of any one field (a form can post anything).
LEAD_FIELD_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class LeadInput:
    """One form submission. `submission_id` is the platform's id of it (the replay and duplicate key)."""

    submission_id: str
    name: str = ""
    email: str = ""
    phone: str = ""
    #: The service wanted, as the person wrote or chose it ("Reiki").
    service: str = ""
    #: A preferred practitioner and/or location, as written (a name or a chat handle).
    practitioner: str = ""
    location: str = ""
    #: Preferred times as written: "Tuesday afternoons", "after 5pm"; each kept as text where not understood.
    preferred_times: tuple[str, ...] = ()
    #: Anything else they wrote.
    message: str = ""


@dataclass(frozen=True, slots=True)
class LeadOutcome:
    """What the core did with a submission: a new lead, one merged into the person's open lead, or
    nothing (`duplicate`: that submission was taken before)."""

    lead_id: int
    status: str


@dataclass(frozen=True, slots=True)
class FormSubmission:
    """A submission read from a platform's form listing: when it was submitted (ms since the epoch), and the lead."""

    submitted_ms: int
    lead: LeadInput


class LeadFeed(Protocol):
    """A platform's form submissions, read by polling (HubSpot forms have no webhook)."""

    async def submissions(self, form_id: str, since_ms: int) -> list[FormSubmission]:
        """The form's submissions made at or after `since_ms`, oldest first (a form unknown: NotFound)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LeadFeedSlot:
    """The polled-forms capability: a feed for one connection (ConnectionInfo, HostSettings), and the
    forms a connection's config names."""

    open: Callable[[Any, Any], LeadFeed]
    forms: Callable[[Mapping[str, Any]], tuple[str, ...]]
