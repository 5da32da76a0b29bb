"""Connecting a Google account: the OAuth round trip bound to one practice and one chat user.

`begin_connect` stores a single-use OAuthState (the PKCE verifier encrypted) that expires;
`finish_connect` consumes it on the callback, exchanges the code, names the account after its
primary calendar and stores the Connection with encrypted credentials. A reused, unknown or
expired state changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import ConnectionInfo, Refused
from adapters.google.auth import authorization_request, exchange_code
from adapters.google.provider import SEND_UPDATES
from sync.store.model import Connection, OAuthState, utcnow

if TYPE_CHECKING:
    from sync.runtime.settings import Settings

__all__ = ["STATE_TTL", "PendingConnect", "begin_connect", "finish_connect"]

STATE_TTL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class PendingConnect:
    url: str
    state: str
    expires_at: datetime


async def begin_connect(
    session: AsyncSession,
    settings: Settings,
    *,
    practice_id: int,
    chat_identity_id: int | None,
    practitioner_id: int | None = None,
    send_updates: str = "none",
    now: datetime | None = None,
) -> PendingConnect:
    """Start `connect google`: store the state for this user and return the consent URL."""
    if send_updates not in SEND_UPDATES:
        raise Refused(f"send_updates must be one of {', '.join(SEND_UPDATES)}", provider="google")
    request = authorization_request(settings)
    expires = (now or utcnow()) + STATE_TTL
    session.add(
        OAuthState(
            state=request.state,
            purpose="google",
            practice_id=practice_id,
            chat_identity_id=chat_identity_id,
            secret={
                "code_verifier": request.code_verifier,
                "redirect_uri": request.redirect_uri,
                "practitioner_id": practitioner_id,
                "send_updates": send_updates,
            },
            expires_at=expires,
        )
    )
    await session.flush()
    return PendingConnect(request.url, request.state, expires)


async def finish_connect(
    session: AsyncSession,
    settings: Settings,
    *,
    state: str,
    code: str,
    now: datetime | None = None,
    transport: Any = None,
) -> Connection:
    """Complete the callback: check the state, trade the code, store the Connection."""
    from adapters.google import discover

    moment = now or utcnow()
    row = await session.scalar(
        select(OAuthState).where(OAuthState.state == state, OAuthState.purpose == "google").with_for_update()
    )
    if row is None or row.used_at is not None:
        raise Refused(
            "This Google sign-in link is unknown or was already used; run `connect google` again.", provider="google"
        )
    if row.expires_at <= moment:
        raise Refused("This Google sign-in link has expired; run `connect google` again.", provider="google")
    row.used_at = moment
    await session.flush()
    secret = dict(row.secret or {})
    creds = await exchange_code(settings, code, secret["code_verifier"], secret["redirect_uri"], transport=transport)
    config = {"send_updates": secret.get("send_updates", "none"), "chat_identity_id": row.chat_identity_id}
    info = ConnectionInfo("google", "", config, creds, transport=transport)
    calendars = await discover(info, settings)
    primary = next((c for c in calendars if (c.extra or {}).get("primary")), None)
    connection = Connection(
        practice_id=row.practice_id,
        practitioner_id=secret.get("practitioner_id"),
        provider="google",
        account=primary.remote_id if primary else "",
        config=config,
        credentials=creds,
        status="active",
    )
    session.add(connection)
    await session.flush()
    return connection
