"""Entra admin consent: single-use, expiring states bound to one chat user, and the recorded outcome.

The chat front end issues a state when an admin asks to connect Outlook, the admin-consent
redirect brings it back, and `redeem_state` accepts it exactly once, before it expires. The
outcome is a ConsentGrant row, which the Graph adapter reads to know the tenant has consented.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.store import audit
from sync.store.model import ChatIdentity, ConsentGrant, OAuthState, Role

__all__ = [
    "CONSENT_TTL",
    "ConsentError",
    "Redeemed",
    "admins_of",
    "issue_state",
    "latest_grant",
    "peek_state",
    "record_outcome",
    "redeem_state",
]

CONSENT_TTL = timedelta(minutes=10)


class ConsentError(Exception):
    """A consent state is unknown, used, expired or not this person's; the message says which."""


@dataclass(frozen=True, slots=True)
class Redeemed:
    practice_id: int
    chat_identity_id: int | None
    purpose: str


async def issue_state(
    session: AsyncSession,
    *,
    purpose: str,
    practice_id: int,
    chat_identity_id: int | None,
    now: datetime,
    ttl: timedelta = CONSENT_TTL,
) -> str:
    """A fresh unguessable state bound to this person, valid for `ttl`."""
    state = secrets.token_urlsafe(32)
    session.add(
        OAuthState(
            state=state,
            purpose=purpose,
            practice_id=practice_id,
            chat_identity_id=chat_identity_id,
            expires_at=now + ttl,
        )
    )
    await session.flush()
    return state


async def peek_state(session: AsyncSession, state: str, *, purpose: str, now: datetime) -> Redeemed | str:
    """The state's binding if it is usable right now, else the reason it is not (nothing is changed)."""
    row = await session.scalar(select(OAuthState).where(OAuthState.state == state[:128]))
    if row is None or row.purpose != purpose:
        return "this consent link is not one clinicbot issued"
    if row.used_at is not None:
        return "this consent link was already used; ask for a new one with `connect outlook`"
    if row.expires_at <= now:
        return "this consent link has expired; ask for a new one with `connect outlook`"
    return Redeemed(practice_id=row.practice_id, chat_identity_id=row.chat_identity_id, purpose=row.purpose)


async def redeem_state(
    session: AsyncSession,
    state: str,
    *,
    purpose: str,
    now: datetime,
    chat_identity_id: int | None = None,
) -> Redeemed:
    """Use a state once. Raise ConsentError if it is unknown, used, expired, for another purpose,
    or (when `chat_identity_id` is given) bound to someone else."""
    row = await session.scalar(select(OAuthState).where(OAuthState.state == state[:128]))
    if row is None or row.purpose != purpose:
        raise ConsentError("this consent link is not one clinicbot issued")
    if chat_identity_id is not None and row.chat_identity_id != chat_identity_id:
        raise ConsentError("this consent link was issued to another person")
    if row.used_at is not None:
        raise ConsentError("this consent link was already used; ask for a new one with `connect outlook`")
    if row.expires_at <= now:
        raise ConsentError("this consent link has expired; ask for a new one with `connect outlook`")
    # Compare-and-set so two concurrent redirects cannot both use it.
    done = await session.execute(
        update(OAuthState).where(OAuthState.id == row.id, OAuthState.used_at.is_(None)).values(used_at=now)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise ConsentError("this consent link was already used; ask for a new one with `connect outlook`")
    return Redeemed(practice_id=row.practice_id, chat_identity_id=row.chat_identity_id, purpose=row.purpose)


async def record_outcome(
    session: AsyncSession,
    redeemed: Redeemed,
    *,
    tenant_id: str | None,
    granted: bool,
    error_code: str | None = None,
    error_description: str | None = None,
    actor: str,
) -> ConsentGrant:
    """Store the consent outcome and audit it."""
    grant = ConsentGrant(
        practice_id=redeemed.practice_id,
        tenant_id=(tenant_id or None) and tenant_id[:64],
        granted=granted,
        error_code=error_code and error_code[:64],
        error_description=error_description and error_description[:2000],
        granted_by=redeemed.chat_identity_id,
    )
    session.add(grant)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="consent.granted" if granted else "consent.failed",
        practice_id=redeemed.practice_id,
        after={"tenant_id": grant.tenant_id, "granted": granted, "error_code": grant.error_code},
    )
    return grant


async def latest_grant(session: AsyncSession, practice_id: int) -> ConsentGrant | None:
    """The practice's most recent consent outcome."""
    return await session.scalar(
        select(ConsentGrant)
        .where(ConsentGrant.practice_id == practice_id)
        .order_by(ConsentGrant.at.desc(), ConsentGrant.id.desc())
        .limit(1)
    )


async def admins_of(
    session: AsyncSession, practice_id: int, platform: str | None = None
) -> list[ChatIdentity]:
    """The practice's admins (on one platform, if given)."""
    stmt = (
        select(ChatIdentity)
        .join(Role, Role.chat_identity_id == ChatIdentity.id)
        .where(ChatIdentity.practice_id == practice_id, Role.role == "admin")
    )
    if platform:
        stmt = stmt.where(ChatIdentity.platform == platform)
    return list((await session.scalars(stmt.order_by(ChatIdentity.id))).all())
