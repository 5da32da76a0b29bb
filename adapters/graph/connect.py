"""Connecting Outlook: a practitioner's own sign-in, or the practice-wide application connection.

- `begin_connect` (from `connect outlook` in Teams or Slack, or the CLI) stores a single-use,
  expiring OAuthState bound to the chat user; its secret is MSAL's flow (PKCE verifier, nonce),
  encrypted at rest. `finish_connect` consumes it on the callback and stores the Connection.
- `add_application_connection` needs an admin-consent ConsentGrant for the practice (written by the
  Teams consent flow); the connection then acts on /users/{id} for every mapped practitioner.
- Practitioners are mapped by Entra object id (preferred: it never changes) or UPN; one with
  neither is opted out of practice-wide sync, as in PerfectServe's Outlook integration.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import Refused
from adapters.graph.auth import GraphAuthConfig, begin_sign_in, complete_sign_in
from adapters.graph.errors import PROVIDER
from sync.store.model import Connection, ConsentGrant, OAuthState, Practitioner, utcnow

__all__ = [
    "STATE_TTL",
    "PendingConnect",
    "add_application_connection",
    "begin_connect",
    "finish_connect",
    "graph_user_ref",
    "map_practitioner",
]

STATE_TTL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class PendingConnect:
    url: str
    state: str
    expires_at: datetime


def redirect_uri(settings: Any) -> str:
    return f"{settings.base_url()}/oauth/graph/callback"


async def begin_connect(
    session: AsyncSession,
    settings: Any,
    *,
    practice_id: int,
    chat_identity_id: int | None,
    practitioner_id: int | None = None,
    login_hint: str | None = None,
    now: datetime | None = None,
    http_client: Any = None,
) -> PendingConnect:
    """Start `connect outlook`: keep MSAL's flow for this user and return the sign-in URL."""
    state = secrets.token_urlsafe(24)
    config = GraphAuthConfig.from_settings(settings, http_client=http_client)
    # A GET callback, like the other providers' /oauth/{provider}/callback.
    start = await begin_sign_in(
        config, redirect_uri(settings), state=state, login_hint=login_hint, response_mode="query"
    )
    expires = (now or utcnow()) + STATE_TTL
    session.add(
        OAuthState(
            state=state,
            purpose="graph",
            practice_id=practice_id,
            chat_identity_id=chat_identity_id,
            secret={"flow": start.flow, "practitioner_id": practitioner_id},
            expires_at=expires,
        )
    )
    await session.flush()
    return PendingConnect(start.auth_uri, state, expires)


async def finish_connect(
    session: AsyncSession,
    settings: Any,
    *,
    params: dict[str, str],
    now: datetime | None = None,
    http_client: Any = None,
) -> Connection:
    """Complete the callback (its query parameters): check the state, redeem the code, store the Connection."""
    moment = now or utcnow()
    row = await session.scalar(
        select(OAuthState)
        .where(OAuthState.state == params.get("state", ""), OAuthState.purpose == "graph")
        .with_for_update()
    )
    if row is None or row.used_at is not None:
        raise Refused(
            "This Outlook sign-in link is unknown or was already used; run `connect outlook` again.", provider=PROVIDER
        )
    if row.expires_at <= moment:
        raise Refused("This Outlook sign-in link has expired; run `connect outlook` again.", provider=PROVIDER)
    row.used_at = moment
    await session.flush()
    secret = dict(row.secret or {})
    config = GraphAuthConfig.from_settings(settings, http_client=http_client)
    creds = await complete_sign_in(config, secret["flow"], params)
    connection = Connection(
        practice_id=row.practice_id,
        practitioner_id=secret.get("practitioner_id"),
        provider="graph",
        account=str(creds.get("username") or ""),
        config={"mode": "delegated", "chat_identity_id": row.chat_identity_id},
        credentials=creds,
        status="active",
    )
    session.add(connection)
    await session.flush()
    return connection


def graph_user_ref(practitioner: Practitioner) -> str | None:
    """How Graph addresses a practitioner's mailbox: object id, else UPN, else None (opted out)."""
    return practitioner.graph_object_id or practitioner.upn or None


async def _mapped_refs(session: AsyncSession, practice_id: int) -> list[str]:
    rows = await session.scalars(select(Practitioner).where(Practitioner.practice_id == practice_id))
    return sorted({ref for p in rows if not p.opted_out and (ref := graph_user_ref(p))})


async def add_application_connection(session: AsyncSession, practice_id: int, tenant_id: str) -> Connection:
    """The practice-wide connection; Refused until an admin granted consent for that tenant."""
    tenant = tenant_id.strip().lower()
    grant = await session.scalar(
        select(ConsentGrant)
        .where(ConsentGrant.practice_id == practice_id, ConsentGrant.granted.is_(True))
        .order_by(ConsentGrant.at.desc(), ConsentGrant.id.desc())
    )
    if grant is None or (grant.tenant_id or "").lower() != tenant:
        raise Refused(
            "No admin consent for that Microsoft 365 tenant yet: an admin runs `consent` in Teams first.",
            provider=PROVIDER,
        )
    connection = Connection(
        practice_id=practice_id,
        provider="graph",
        account=f"tenant {tenant}",
        config={"mode": "application", "tenant_id": tenant, "users": await _mapped_refs(session, practice_id)},
        credentials={"kind": "application", "tenant_id": tenant},
        status="active",
    )
    session.add(connection)
    await session.flush()
    return connection


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
