"""People clinicbot has seen in chat, and their roles: found by name, granted and revoked.

Used by `clinicbot role ...` (an operator at the server) and by the chat's `role grant` when a
person is named rather than @mentioned: Teams users often type a colleague's name as plain
text. A name must match exactly one person; otherwise nothing changes and the caller asks for a
mention.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.store import audit
from sync.store.model import CHANNEL_PREFIX, ChatIdentity, Role

__all__ = ["ROLE_NAMES", "RoleError", "find_person", "grant_role", "list_roles", "revoke_role"]

ROLE_NAMES = ("admin", "staff", "practitioner")


class RoleError(Exception):
    """A user-facing problem with a role change; the message says what to do."""


async def find_person(session: AsyncSession, practice_id: int, name: str, platform: str | None = None) -> ChatIdentity:
    """The one person of the practice whose display name is `name` (any case), or whose name starts
    with it as whole words ("Alex" for "Alex Wilber"); RoleError for none or several."""
    wanted = " ".join(name.strip().lstrip("@").split()).lower()
    if not wanted:
        raise RoleError("name the person")
    stmt = select(ChatIdentity).where(
        ChatIdentity.practice_id == practice_id,
        ChatIdentity.display_name.is_not(None),
        ChatIdentity.user_id.not_like(f"{CHANNEL_PREFIX}%"),
    )
    if platform is not None:
        stmt = stmt.where(ChatIdentity.platform == platform)
    people = list((await session.scalars(stmt.order_by(ChatIdentity.id))).all())
    exact = [p for p in people if " ".join((p.display_name or "").split()).lower() == wanted]
    found = exact or [p for p in people if " ".join((p.display_name or "").split()).lower().startswith(wanted + " ")]
    if len(found) == 1:
        return found[0]
    if not found:
        raise RoleError(f"nobody called {name.strip()!r} has talked to clinicbot yet")
    raise RoleError(f"more than one person is called {name.strip()!r}")


async def grant_role(session: AsyncSession, person: ChatIdentity, role: str, actor: str) -> bool:
    """Give `person` the role; False when they had it already."""
    if role not in ROLE_NAMES:
        raise RoleError(f"{role!r} is not a role; roles are {', '.join(ROLE_NAMES)}")
    existing = await session.scalar(select(Role).where(Role.chat_identity_id == person.id, Role.role == role))
    if existing is not None:
        return False
    session.add(Role(chat_identity_id=person.id, role=role, granted_by=actor))
    await session.flush()
    await audit.record(session, actor=actor, action="role.grant", practice_id=person.practice_id,
                       after={"chat_identity_id": person.id, "role": role, "practitioner_id": None})  # fmt: skip
    return True


async def revoke_role(session: AsyncSession, person: ChatIdentity, role: str, actor: str) -> bool:
    """Take the role from `person`; False when they did not have it. The last admin stays."""
    existing = await session.scalar(select(Role).where(Role.chat_identity_id == person.id, Role.role == role))
    if existing is None:
        return False
    if role == "admin":
        admins = await session.scalar(
            select(func.count()).select_from(Role).join(ChatIdentity, ChatIdentity.id == Role.chat_identity_id)
            .where(ChatIdentity.practice_id == person.practice_id, Role.role == "admin")
        )  # fmt: skip
        if (admins or 0) <= 1:
            raise RoleError("that is the last admin; grant admin to someone else first")
    await session.delete(existing)
    if role == "practitioner":
        person.practitioner_id = None
    await session.flush()
    await audit.record(session, actor=actor, action="role.revoke", practice_id=person.practice_id,
                       after={"chat_identity_id": person.id, "role": role, "practitioner_id": None})  # fmt: skip
    return True


async def list_roles(session: AsyncSession, practice_id: int) -> list[tuple[ChatIdentity, str]]:
    """(person, role) for everyone holding a role in the practice."""
    rows = await session.execute(
        select(ChatIdentity, Role.role).join(Role, Role.chat_identity_id == ChatIdentity.id)
        .where(ChatIdentity.practice_id == practice_id).order_by(ChatIdentity.id, Role.role)
    )  # fmt: skip
    return [(identity, str(role)) for identity, role in rows.tuples().all()]
