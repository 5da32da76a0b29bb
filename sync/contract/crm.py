"""Logging visits to a practice's CRM, as plain data: what the core asks a CRM integration to record.

A visit is logged once when booked and then kept up to date: a move changes its times, a cancel
marks it cancelled, and the outcome (attended, no-show) is set afterwards. Each write names the
visit by clinicbot's stable `key`, so a write retried after a crash finds the record it made
(HubSpot: a meeting property searched before creating; Salesforce: an external-id upsert) and never
makes a second one. The integration builds the wire format; the core decides what is logged, when.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = ["CrmLog", "CrmRecord", "CrmSlot", "CrmVisit", "VisitStage"]

#: Where the visit stands: booked (or moved: the times say where), cancelled, attended, no_show.
VisitStage = Literal["booked", "cancelled", "attended", "no_show"]


@dataclass(frozen=True, slots=True)
class CrmVisit:
    """One visit as the CRM should hold it now (PHI kept to what a CRM activity needs: no notes)."""

    #: clinicbot's stable id for the visit ("clinicbot-<practice>-<appointment>").
    key: str
    stage: VisitStage
    start: datetime
    end: datetime
    tzid: str
    title: str
    practice: str
    practitioner: str
    client_name: str
    client_email: str | None
    client_phone: str | None = None
    location: str = ""
    #: The practitioner's user (owner) id on the CRM, when mapped.
    owner_ref: str | None = None
    #: True when the last change was a move (the CRM may say "rescheduled" until the outcome is known).
    moved: bool = False


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """Where the CRM holds the visit: its activity id and the person (contact or lead) it is linked to."""

    remote_id: str
    person_id: str | None = None


class CrmLog(Protocol):
    """Records visits in one CRM account. Raises the contract's errors (RateLimited, AuthExpired ...)."""

    async def record(self, visit: CrmVisit, known: CrmRecord | None, *, first_try: bool = False) -> CrmRecord:
        """Create or update the visit's activity; `known` is where it was recorded last (None: maybe never).

        `first_try` says no earlier write of this visit was ever sent, so none can have landed unseen:
        a CRM that looks for a lost create first may skip the look.
        """
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CrmSlot:
    """The CRM capability: a visit log for one connection (ConnectionInfo, HostSettings)."""

    open: Callable[[Any, Any], CrmLog]
