"""A practitioner's Microsoft 365 mailbox: UPN or Entra object id, checked and normalised (pure functions).

Practitioners are mapped by Entra object id (preferred: it never changes) or UPN; one with neither is
opted out of practice-wide sync, as in PerfectServe's Outlook integration. The core stores the mapping
in its external-identity table (integration "graph", kinds "upn" and "object_id").
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from adapters.graph.errors import PROVIDER
from sync.contract import Refused
from sync.contract.integration import StaffIdentities, StaffRef

__all__ = ["KINDS", "STAFF_IDENTITIES", "clean_identities", "staff_user_ref"]

KINDS = ("upn", "object_id")


def clean_identities(values: Mapping[str, str | None]) -> dict[str, str]:
    """{"upn": ..., "object_id": ...} checked (name@domain, a GUID) and lower-cased; unset ones left out."""
    unknown = set(values) - set(KINDS)
    if unknown:
        raise Refused(f"Graph identities are {' and '.join(KINDS)}, not {', '.join(sorted(unknown))}",
                      provider=PROVIDER)
    upn, object_id = values.get("upn"), values.get("object_id")
    out: dict[str, str] = {}
    if upn is not None:
        if "@" not in upn or any(c.isspace() for c in upn) or len(upn) > 320:
            raise Refused(f"{upn!r} is not a user principal name like dr.lee@clinic.example", provider=PROVIDER)
        out["upn"] = upn.lower()
    if object_id is not None:
        try:
            out["object_id"] = str(uuid.UUID(object_id))
        except ValueError:
            raise Refused(f"{object_id!r} is not an Entra object id (a GUID)", provider=PROVIDER) from None
    return out


def staff_user_ref(staff: StaffRef) -> str | None:
    """How Graph addresses a practitioner's mailbox: object id, else UPN, else None (opted out)."""
    return staff.identities.get("object_id") or staff.identities.get("upn") or None


STAFF_IDENTITIES = StaffIdentities(kinds=KINDS, clean=clean_identities, user_ref=staff_user_ref)
