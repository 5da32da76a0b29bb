"""Who is talking: platform user -> ChatIdentity -> Actor, creating what is missing on first contact.

The identities service of every chat front end (Slack, Teams): they pass plain ids and get an
`Actor`, a plain dataclass, back; none of them reads the tables itself.

Practice binding: a Slack team id (or Teams tenant id) names its practice. When a workspace talks
to clinicbot for the first time, it claims the only practice that is not yet bound to that platform
(a fresh install holds one, "default"); otherwise a new practice is created for it.

First person rule: in a practice where nobody holds the admin role, the first person to talk to
clinicbot becomes its admin (audited as "role.grant" with reason "first contact"). They can then
grant staff and practitioner roles with `role grant`. Everyone else starts with no role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.core import Core
from sync.store import audit
from sync.store.model import ChatIdentity, Practice, Role

__all__ = ["Actor", "Platform", "actor_for_identity", "remember_conversation", "resolve_actor"]

Platform = Literal["slack", "teams"]
_BINDING = {"slack": Practice.slack_team_id, "teams": Practice.teams_tenant_id}


@dataclass(frozen=True, slots=True)
class Actor:
    """The person behind a command, as the handlers need them."""

    practice_id: int
    chat_identity_id: int
    platform: str
    display: str
    roles: frozenset[str]
    workspace_id: str = ""
    user_id: str = ""
    practitioner_id: int | None = None

    @property
    def audit_name(self) -> str:
        """How the audit log names this person: "slack:<team>/<user>" or "teams:<tenant>/<user>"."""
        return f"{self.platform}:{self.workspace_id}/{self.user_id}"

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def is_staff(self) -> bool:
        """Admins can do everything staff can."""
        return bool({"admin", "staff"} & self.roles)


async def _practice_for(session: AsyncSession, platform: Platform, workspace_id: str, workspace_name: str) -> Practice:
    column = _BINDING[platform]
    practice = await session.scalar(select(Practice).where(column == workspace_id))
    if practice is not None:
        return practice
    unbound = list((await session.scalars(select(Practice).where(column.is_(None)).order_by(Practice.id))).all())
    if len(unbound) == 1 and await session.scalar(select(func.count()).select_from(Practice)) == 1:
        practice = unbound[0]
        setattr(practice, column.key, workspace_id)
        await session.flush()
        await audit.record(
            session,
            actor=f"{platform}:{workspace_id}",
            action="practice.bind",
            practice_id=practice.id,
            after={column.key: workspace_id},
        )
        return practice
    base = (workspace_name or f"{platform} {workspace_id}").strip()[:180]
    name, n = base, 1
    while await session.scalar(select(Practice.id).where(Practice.name == name)) is not None:
        n += 1
        name = f"{base} ({n})"
    practice = Practice(name=name, timezone="UTC", settings={})
    setattr(practice, column.key, workspace_id)
    session.add(practice)
    await session.flush()
    await audit.record(
        session,
        actor=f"{platform}:{workspace_id}",
        action="practice.create",
        practice_id=practice.id,
        after={"name": name, column.key: workspace_id},
    )
    return practice


async def _roles(session: AsyncSession, identity_id: int) -> frozenset[str]:
    rows = await session.scalars(select(Role.role).where(Role.chat_identity_id == identity_id))
    return frozenset(rows.all())


async def _resolve(
    session: AsyncSession,
    platform: Platform,
    workspace_id: str,
    user_id: str,
    display: str,
    workspace_name: str,
) -> Actor:
    identity = await session.scalar(
        select(ChatIdentity).where(
            ChatIdentity.platform == platform,
            ChatIdentity.workspace_id == workspace_id,
            ChatIdentity.user_id == user_id,
        )
    )
    if identity is None:
        practice = await _practice_for(session, platform, workspace_id, workspace_name)
        identity = ChatIdentity(
            practice_id=practice.id,
            platform=platform,
            workspace_id=workspace_id,
            user_id=user_id,
            display_name=display or None,
        )
        session.add(identity)
        await session.flush()
        await _first_admin(session, practice.id, identity, f"{platform}:{workspace_id}/{user_id}")
    elif display and identity.display_name != display:
        identity.display_name = display
    return actor_for_identity(identity, await _roles(session, identity.id))


async def _first_admin(session: AsyncSession, practice_id: int, identity: ChatIdentity, actor: str) -> None:
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # Serialize first contacts of one practice so exactly one person becomes its first admin.
        await session.execute(select(Practice.id).where(Practice.id == practice_id).with_for_update())
    admins = await session.scalar(
        select(func.count())
        .select_from(Role)
        .join(ChatIdentity, ChatIdentity.id == Role.chat_identity_id)
        .where(ChatIdentity.practice_id == practice_id, Role.role == "admin")
    )
    if admins:
        return
    session.add(Role(chat_identity_id=identity.id, role="admin", granted_by="first contact"))
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="role.grant",
        practice_id=practice_id,
        after={"chat_identity_id": identity.id, "role": "admin"},
        details={"reason": "first contact"},
    )


def actor_for_identity(identity: ChatIdentity, roles: frozenset[str]) -> Actor:
    """Build the Actor for a loaded identity and its roles."""
    return Actor(
        practice_id=identity.practice_id,
        chat_identity_id=identity.id,
        platform=identity.platform,
        display=identity.display_name or identity.user_id,
        roles=roles,
        workspace_id=identity.workspace_id,
        user_id=identity.user_id,
        practitioner_id=identity.practitioner_id,
    )


async def resolve_actor(
    core: Core,
    platform: Platform,
    workspace_id: str,
    user_id: str,
    display: str = "",
    workspace_name: str = "",
) -> Actor:
    """Find or create the person and their practice; the first person in a fresh practice becomes admin."""
    if not workspace_id or not user_id:
        raise ValueError("a chat user needs a workspace id and a user id")
    for attempt in range(3):
        try:
            async with core.store.session() as session:
                return await _resolve(session, platform, workspace_id, user_id, display, workspace_name)
        except IntegrityError:
            # Two first contacts raced to create the same identity or practice: the winner's rows exist now.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def remember_conversation(core: Core, chat_identity_id: int, ref: dict[str, Any]) -> None:
    """Store where to DM this person (Teams conversation reference, Slack DM channel)."""
    async with core.store.session() as session:
        identity = await session.get(ChatIdentity, chat_identity_id)
        if identity is not None and identity.conversation_ref != ref:
            identity.conversation_ref = ref
