"""Connecting Outlook: a practitioner's own sign-in, or the practice-wide application connection.

- the delegated sign-in is adapters.graph.oauth.GraphOAuth, plain data for the core;
- the practice-wide application connection is adapters.graph.oauth.GraphTenant; the core checks the
  admin consent (written by the Teams consent flow) and stores it; it acts on /users/{id} for every
  mapped practitioner.
- Practitioners are mapped by Entra object id (preferred: it never changes) or UPN; one with
  neither is opted out of practice-wide sync, as in PerfectServe's Outlook integration.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.graph.errors import PROVIDER
from sync.contract import Refused
from sync.store.model import Connection, Practitioner

__all__ = ["graph_user_ref", "map_practitioner"]


def graph_user_ref(practitioner: Practitioner) -> str | None:
    """How Graph addresses a practitioner's mailbox: object id, else UPN, else None (opted out)."""
    return practitioner.graph_object_id or practitioner.upn or None


async def _mapped_refs(session: AsyncSession, practice_id: int) -> list[str]:
    rows = await session.scalars(select(Practitioner).where(Practitioner.practice_id == practice_id))
    return sorted({ref for p in rows if not p.opted_out and (ref := graph_user_ref(p))})


async def map_practitioner(
    session: AsyncSession, practitioner: Practitioner, *, upn: str | None, object_id: str | None
) -> list[Connection]:
    """Set (or clear, with both None) a practitioner's Graph mapping; returns the updated connections."""
    if upn is not None and ("@" not in upn or any(c.isspace() for c in upn) or len(upn) > 320):
        raise Refused(f"{upn!r} is not a user principal name like dr.lee@clinic.example", provider=PROVIDER)
    if object_id is not None:
        try:
            object_id = str(uuid.UUID(object_id))
        except ValueError:
            raise Refused(f"{object_id!r} is not an Entra object id (a GUID)", provider=PROVIDER) from None
    practitioner.upn = upn.lower() if upn else None
    practitioner.graph_object_id = object_id
    await session.flush()
    refs = await _mapped_refs(session, practitioner.practice_id)
    rows = await session.scalars(
        select(Connection).where(Connection.practice_id == practitioner.practice_id, Connection.provider == "graph")
    )
    changed = []
    for conn in rows:
        if (conn.config or {}).get("mode") == "application":
            conn.config = {**conn.config, "users": refs}  # a new dict, so the JSON column is written
            changed.append(conn)
    await session.flush()
    return changed
