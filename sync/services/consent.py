"""Tenant-wide admin consent as the chat front ends need it: the practice's tenant, whether consent
was granted, a fresh consent state for an admin, and the admins to ask. Plain data out; each call
is one short transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sync.integrations import consent
from sync.runtime.core import Core
from sync.store.model import Practice

__all__ = [
    "AdminContact",
    "ConsentRecorded",
    "admins_to_ask",
    "check_consent_state",
    "consent_granted",
    "issue_consent_state",
    "practice_tenant",
    "record_consent",
]


@dataclass(frozen=True, slots=True)
class AdminContact:
    """An admin of the practice and where to reach them (None: they never talked to the bot)."""

    chat_identity_id: int
    conversation_ref: dict[str, Any] | None


async def practice_tenant(core: Core, practice_id: int) -> str | None:
    """The Microsoft tenant the practice's Teams installation belongs to, when known."""
    async with core.store.session() as session:
        practice = await session.get(Practice, practice_id)
        return practice.teams_tenant_id if practice else None


async def consent_granted(core: Core, practice_id: int) -> bool:
    """Whether the practice's most recent consent outcome is a grant."""
    async with core.store.session() as session:
        grant = await consent.latest_grant(session, practice_id)
        return bool(grant and grant.granted)


@dataclass(frozen=True, slots=True)
class ConsentRecorded:
    """A consent outcome as stored: whose it was, and whether it counts as a grant."""

    practice_id: int
    chat_identity_id: int | None
    granted: bool
    error_code: str | None
    error_description: str | None


async def check_consent_state(core: Core, state: str, *, purpose: str) -> consent.Redeemed | str:
    """The state's binding when it is usable now, else why not (nothing is changed)."""
    async with core.store.session() as session:
        return await consent.peek_state(session, state, purpose=purpose, now=core.clock())


async def record_consent(
    core: Core, state: str, *, purpose: str, granted: bool, tenant: str | None, error_code: str | None,
    error_description: str | None, tenant_of: Callable[[int], Awaitable[str | None]], actor: str,
) -> ConsentRecorded:
    """Use the state once and store the outcome, in one transaction. A grant made in another tenant
    than the practice's (`tenant_of`) is stored as refused ("wrong_tenant"). Raises ConsentError
    when the state cannot be used."""
    async with core.store.session() as session:
        redeemed = await consent.redeem_state(session, state, purpose=purpose, now=core.clock())
        expected = await tenant_of(redeemed.practice_id)
        if granted and expected and tenant and tenant.lower() != expected.lower():
            granted, error_code = False, "wrong_tenant"
            error_description = "consent was granted in another organisation than the clinic's"
        await consent.record_outcome(
            session,
            redeemed,
            tenant_id=tenant if granted else (tenant or expected),
            granted=granted,
            error_code=error_code,
            error_description=error_description,
            actor=actor,
        )
        return ConsentRecorded(redeemed.practice_id, redeemed.chat_identity_id, granted, error_code,
                               error_description)


async def issue_consent_state(core: Core, *, purpose: str, practice_id: int, chat_identity_id: int) -> str:
    """A fresh single-use consent state bound to this admin."""
    async with core.store.session() as session:
        return await consent.issue_state(
            session, purpose=purpose, practice_id=practice_id, chat_identity_id=chat_identity_id, now=core.clock()
        )


async def admins_to_ask(core: Core, practice_id: int, platform: str) -> list[AdminContact]:
    """The practice's admins on that platform, oldest first."""
    async with core.store.session() as session:
        admins = await consent.admins_of(session, practice_id, platform=platform)
        return [AdminContact(a.id, a.conversation_ref) for a in admins]
