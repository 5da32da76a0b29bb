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

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.core import Core
from sync.services.errors import Denied, Invalid, NotFound
from sync.services.practices import find_practitioner
from sync.services.roles import RoleError, find_person
from sync.store import audit
from sync.store.model import ChatIdentity, Practice, Practitioner, Role

__all__ = [
    "Actor",
    "ChatPerson",
    "NeedPractitioner",
    "NoSuchPerson",
    "NoSuchPractitioner",
    "NotLinked",
    "PersonRef",
    "Platform",
    "PractitionerRef",
    "RoleChange",
    "actor_for_identity",
    "change_role",
    "find_practitioner_of",
    "practitioner_by_id",
    "practitioner_named",
    "remember_conversation",
    "resolve_actor",
]

Platform = Literal["slack", "teams"]
_BINDING = {"slack": Practice.slack_team_id, "teams": Practice.teams_tenant_id}


@dataclass(frozen=True, slots=True)
class ChatPerson:
    """A chat identity as plain data: a person (or a channel) on one platform, and where to reach them."""

    id: int
    practice_id: int
    platform: str
    workspace_id: str
    user_id: str
    display_name: str | None = None
    practitioner_id: int | None = None
    conversation_ref: dict[str, Any] | None = None

    @classmethod
    def of(cls, identity: ChatIdentity) -> ChatPerson:
        return cls(identity.id, identity.practice_id, identity.platform, identity.workspace_id, identity.user_id,
                   identity.display_name, identity.practitioner_id,
                   dict(identity.conversation_ref) if identity.conversation_ref else None)


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
    rows = await session.scalars(_ROLES, {"identity_id": identity_id})
    return frozenset(rows.all())


#: Statements every request whose person is not in the actor cache runs, built once.
_ROLES = select(Role.role).where(Role.chat_identity_id == bindparam("identity_id"))
_IDENTITY = select(ChatIdentity).where(
    ChatIdentity.platform == bindparam("platform"),
    ChatIdentity.workspace_id == bindparam("workspace_id"),
    ChatIdentity.user_id == bindparam("user_id"),
)


async def _resolve(
    session: AsyncSession,
    platform: Platform,
    workspace_id: str,
    user_id: str,
    display: str,
    workspace_name: str,
) -> Actor:
    identity = await session.scalar(
        _IDENTITY, {"platform": platform, "workspace_id": workspace_id, "user_id": user_id}
    )
    if identity is None:
        practice = await _practice_for(session, platform, workspace_id, workspace_name)
        await _serialize_first_contacts(session, practice.id)
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


async def _serialize_first_contacts(session: AsyncSession, practice_id: int) -> None:
    """Serialize first contacts of one practice (PostgreSQL), so exactly one person becomes its first admin.

    Taken before the new identity is inserted, and FOR NO KEY UPDATE: the insert's foreign key holds
    a KEY SHARE lock on the practice row, and two first contacts that each inserted first and then
    asked FOR UPDATE waited for each other (a deadlock, seen under bench.chat_mix's first contacts).
    NO KEY UPDATE does not conflict with KEY SHARE, so imports writing the practice's rows go on.
    """
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # key_share=True without read=True is how SQLAlchemy spells FOR NO KEY UPDATE.
        await session.execute(select(Practice.id).where(Practice.id == practice_id).with_for_update(key_share=True))


async def _first_admin(session: AsyncSession, practice_id: int, identity: ChatIdentity, actor: str) -> None:
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


def actor_for_identity(identity: ChatIdentity | ChatPerson, roles: frozenset[str]) -> Actor:
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


# --- people and roles -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonRef:
    """A person named in chat: a platform user id (from a mention) or a name/handle."""

    user_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class PractitionerRef:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class RoleChange:
    """What `change_role` did: `changed` is False when the person already had (or lacked) the role."""

    label: str
    changed: bool
    practitioner: str | None = None


class NotLinked(NotFound):
    """The person mentioned is not linked to a practitioner."""


class NoSuchPractitioner(NotFound):
    """No practitioner of the practice has that name or handle."""


class NoSuchPerson(Invalid):
    """Nobody, or more than one person, in the practice goes by that name."""


class NeedPractitioner(Invalid):
    """A practitioner role needs to know which practitioner the person is."""


async def practitioner_named(
    session: AsyncSession, practice_id: int, platform: str, who: PersonRef
) -> PractitionerRef:
    """A practitioner named by handle or name, or by mentioning a chat user linked to one."""
    found: Practitioner | None
    if who.user_id:
        identity = await session.scalar(
            select(ChatIdentity).where(
                ChatIdentity.practice_id == practice_id,
                ChatIdentity.platform == platform,
                ChatIdentity.user_id == who.user_id,
            )
        )
        if identity is None or identity.practitioner_id is None:
            raise NotLinked("that person is not linked to a practitioner")
        found = await session.get(Practitioner, identity.practitioner_id)
    else:
        found = await find_practitioner(session, practice_id, who.name or "")
    if found is None:
        shown = f"@{who.name}" if who.name else f"user {who.user_id}"
        raise NoSuchPractitioner(f"there is no practitioner {shown}")
    return PractitionerRef(found.id, found.name)


async def find_practitioner_of(core: Core, practice_id: int, platform: str, who: PersonRef) -> PractitionerRef:
    """`practitioner_named` in a transaction of its own."""
    async with core.store.session() as session:
        return await practitioner_named(session, practice_id, platform, who)


async def practitioner_by_id(core: Core, practitioner_id: int) -> PractitionerRef | None:
    async with core.store.session() as session:
        pr = await session.get(Practitioner, practitioner_id)
        return PractitionerRef(pr.id, pr.name) if pr is not None else None


async def _identity_for(session: AsyncSession, practice_id: int, platform: str, workspace_id: str,
                        who: PersonRef) -> ChatIdentity:
    if who.user_id:
        found = await session.scalar(
            select(ChatIdentity).where(
                ChatIdentity.platform == platform,
                ChatIdentity.workspace_id == workspace_id,
                ChatIdentity.user_id == who.user_id,
            )
        )
        if found is None:
            found = ChatIdentity(practice_id=practice_id, platform=platform, workspace_id=workspace_id,
                                 user_id=who.user_id)
            session.add(found)
            await session.flush()
        if found.practice_id != practice_id:
            raise Denied("that person belongs to another practice")
        return found
    try:  # a typed name: the one person of the practice called that (whole words, any case)
        return await find_person(session, practice_id, who.name or "", platform)
    except RoleError as exc:
        raise NoSuchPerson(f"{exc}; mention them so I know who you mean") from None


async def change_role(
    core: Core,
    practice_id: int,
    platform: str,
    workspace_id: str,
    *,
    target: PersonRef,
    role: str,
    grant: bool,
    actor: str,
    practitioner: PersonRef | None = None,
) -> RoleChange:
    """Grant or revoke one role of one chat person, audited; the practice always keeps an admin.

    A practitioner role links the person to a practitioner: the one named, else the one called
    like the person. Raises NoSuchPerson, NeedPractitioner, or Denied (another practice's person,
    the last admin).
    """
    async with core.store.session() as session:
        person = await _identity_for(session, practice_id, platform, workspace_id, target)
        label = person.display_name or (f"@{target.name}" if target.name else f"user {target.user_id}")
        existing = await session.scalar(select(Role).where(Role.chat_identity_id == person.id, Role.role == role))
        linked: PractitionerRef | None = None
        if grant and role == "practitioner":
            ref = practitioner or (PersonRef(name=person.display_name) if person.display_name else None)
            if ref is None:
                raise NeedPractitioner("which practitioner is this person?")
            try:
                linked = await practitioner_named(session, practice_id, platform, ref)
            except NotFound:
                raise NeedPractitioner(f"which practitioner is {label}? name their handle") from None
        if grant:
            if existing is not None and (linked is None or person.practitioner_id == linked.id):
                return RoleChange(label, False)
            if existing is None:
                session.add(Role(chat_identity_id=person.id, role=role, granted_by=actor))
            if linked is not None:
                person.practitioner_id = linked.id
        else:
            if existing is None:
                return RoleChange(label, False)
            if role == "admin":
                admins = await session.scalar(
                    select(func.count()).select_from(Role)
                    .join(ChatIdentity, ChatIdentity.id == Role.chat_identity_id)
                    .where(ChatIdentity.practice_id == practice_id, Role.role == "admin")
                )
                if (admins or 0) <= 1:
                    raise Denied("that is the last admin; grant admin to someone else first")
            await session.delete(existing)
            if role == "practitioner":
                person.practitioner_id = None
        await session.flush()
        await audit.record(
            session,
            actor=actor,
            action="role.grant" if grant else "role.revoke",
            practice_id=practice_id,
            after={"chat_identity_id": person.id, "role": role, "practitioner_id": linked.id if linked else None},
        )
    return RoleChange(label, True, linked.name if linked else None)
