"""Tenant-wide admin consent as the chat front ends need it: the practice's tenant, whether consent
was granted, a fresh consent state for an admin, and the admins to ask. Plain data out; each call
is one short transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sync.integrations import consent
from sync.runtime.core import Core
from sync.store.model import Practice

__all__ = ["AdminContact", "admins_to_ask", "consent_granted", "issue_consent_state", "practice_tenant"]


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
