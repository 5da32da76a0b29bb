"""Who a notification goes to on one chat platform: platform-free lookups for the notifiers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.core import Core
from sync.runtime.notifier import Notification
from sync.services.identities import ChatPerson
from sync.store import audit
from sync.store.database import hold_write_lock
from sync.store.model import CHANNEL_PREFIX, ChatIdentity, Practice, Role

__all__ = [
    "CHANNEL_PREFIX",
    "STAFF_CHANNEL_KEY",
    "Channel",
    "RememberedChannel",
    "chat_recipients",
    "conversation_ref_of",
    "keep_reference",
    "reachable",
    "recipients",
    "remember_channel",
    "remember_install",
    "set_staff_channel",
    "staff_ids",
    "staff_user_ids",
    "store_conversation_ref",
]

#: Practice.settings key holding, per platform, the chat identity id of the staff channel.
STAFF_CHANNEL_KEY = "staff_channel"


async def recipients(session: AsyncSession, notification: Notification, platform: str) -> list[ChatIdentity]:
    """The chat identities on `platform` that should receive `notification`."""
    n = notification
    stmt = select(ChatIdentity).where(
        ChatIdentity.practice_id == n.practice_id, ChatIdentity.platform == platform
    )
    if n.audience == "admins":
        stmt = stmt.join(Role, Role.chat_identity_id == ChatIdentity.id).where(Role.role == "admin")
    elif n.audience in ("staff", "ops"):
        practice = await session.get(Practice, n.practice_id)
        channel_id = (
            ((practice.settings or {}).get(STAFF_CHANNEL_KEY) or {}).get(platform) if practice else None
        )
        if channel_id is not None:
            stmt = stmt.where(ChatIdentity.id == int(channel_id))
        elif n.audience == "ops":
            stmt = stmt.join(Role, Role.chat_identity_id == ChatIdentity.id).where(Role.role == "admin")
        else:
            return []
    elif n.chat_identity_id is not None:
        stmt = stmt.where(ChatIdentity.id == n.chat_identity_id)
    elif n.practitioner_id is not None:
        stmt = stmt.where(ChatIdentity.practitioner_id == n.practitioner_id)
    else:
        return []
    return list((await session.scalars(stmt.order_by(ChatIdentity.id))).unique().all())


def _personal(ref: dict[str, Any] | None) -> bool:
    return bool(ref) and (ref.get("conversation") or {}).get("conversationType") == "personal"  # type: ignore[union-attr]


async def store_conversation_ref(
    session: AsyncSession, chat_identity_id: int, ref: dict[str, Any], *, lock: bool = False
) -> bool:
    """Remember where to reach this person; True when the reference names a conversation not stored before.

    A 1:1 reference is never replaced by a channel one: the channel one only serves to open a 1:1
    chat when there is none yet. With `lock`, two turns storing the same reference at once (an
    install's two activities) are serialized, so exactly one of them sees the conversation as new.
    """
    if lock:
        await hold_write_lock(session)
    stmt = select(ChatIdentity).where(ChatIdentity.id == chat_identity_id)
    if lock and session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    identity = await session.scalar(stmt.execution_options(populate_existing=True))
    if identity is None:
        return False
    old = identity.conversation_ref
    new = _conversation_id(old) != _conversation_id(ref)
    if old == ref or (_personal(old) and not _personal(ref)):
        return new
    identity.conversation_ref = ref
    return new


def _conversation_id(ref: dict[str, Any] | None) -> str | None:
    return str((ref.get("conversation") or {}).get("id")) if ref else None


@dataclass(frozen=True, slots=True)
class RememberedChannel:
    """A stored channel, and whether this call stored it first (the conversation is new to clinicbot)."""

    channel: ChatIdentity
    created: bool


async def remember_channel(
    session: AsyncSession,
    practice_id: int,
    platform: str,
    workspace_id: str,
    conversation_id: str,
    name: str,
    ref: dict[str, Any],
    *,
    actor: str = "system:chat",
) -> RememberedChannel:
    """Store a channel or group chat the bot was added to; the first one becomes the staff channel.

    An upsert: Teams sends installationUpdate and conversationUpdate for one install at the same
    moment, and both store the same channel; the one that loses the race updates the row.
    """
    user_id = (CHANNEL_PREFIX + conversation_id)[:128]
    values = {
        "practice_id": practice_id,
        "platform": platform,
        "workspace_id": workspace_id,
        "user_id": user_id,
        "display_name": name[:200] or None,
        "conversation_ref": ref,
    }
    keys = ["platform", "workspace_id", "user_id"]
    stmt: Executable
    # Imported here: each dialect module costs megabytes, and a process only ever uses one.
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        stmt = postgresql.insert(ChatIdentity).values(values).on_conflict_do_nothing(index_elements=keys)
    else:
        from sqlalchemy.dialects import sqlite

        stmt = sqlite.insert(ChatIdentity).values(values).on_conflict_do_nothing(index_elements=keys)
    result = await session.execute(stmt)
    created = bool(getattr(result, "rowcount", 0))
    channel = await session.scalar(
        select(ChatIdentity).where(
            ChatIdentity.platform == platform,
            ChatIdentity.workspace_id == workspace_id,
            ChatIdentity.user_id == user_id,
        )
    )
    if channel is None:  # cannot happen: the row was inserted or already there
        raise LookupError(f"channel {user_id!r} vanished while being stored")
    if channel.conversation_ref != ref:
        channel.conversation_ref = ref
    await session.flush()
    practice = await session.get(Practice, practice_id)
    if (
        practice is not None
        and ((practice.settings or {}).get(STAFF_CHANNEL_KEY) or {}).get(platform) is None
    ):
        await set_staff_channel(session, practice_id, platform, channel.id, actor=actor)
    return RememberedChannel(channel, created)


async def staff_user_ids(
    session: AsyncSession, practice_id: int, platform: str, limit: int = 59
) -> list[str]:
    """Platform user ids of the practice's admins and staff (for per-user card refresh)."""
    rows = await session.scalars(
        select(ChatIdentity.user_id)
        .join(Role, Role.chat_identity_id == ChatIdentity.id)
        .where(
            ChatIdentity.practice_id == practice_id,
            ChatIdentity.platform == platform,
            Role.role.in_(("admin", "staff")),
        )
        .order_by(ChatIdentity.id)
    )
    return list(dict.fromkeys(rows.all()))[:limit]


async def set_staff_channel(
    session: AsyncSession, practice_id: int, platform: str, chat_identity_id: int, *, actor: str = "system:chat"
) -> None:
    """Make this channel identity the practice's staff channel on `platform`; audited when it changes."""
    practice = await session.get(Practice, practice_id)
    if practice is None:
        return
    current = dict(practice.settings or {})
    channels = dict(current.get(STAFF_CHANNEL_KEY) or {})
    before = channels.get(platform)
    if before == chat_identity_id:
        return
    channels[platform] = chat_identity_id
    current[STAFF_CHANNEL_KEY] = channels
    practice.settings = current
    # Where conflict cards and alarms go is a setting that matters: audited like the others.
    await audit.record(session, actor=actor, action="practice.staff_channel", practice_id=practice_id,
                       before={"platform": platform, "chat_identity_id": before},
                       after={"platform": platform, "chat_identity_id": chat_identity_id})


# --- the same, each in a transaction of its own: what chat front ends call -------------------------


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel or group chat the bot was added to: its workspace, conversation id, name and reference."""

    workspace_id: str
    conversation_id: str
    name: str
    ref: dict[str, Any]


async def conversation_ref_of(core: Core, chat_identity_id: int) -> dict[str, Any] | None:
    """Where this person was last reached (a stored conversation reference), or None."""
    async with core.store.session() as session:
        identity = await session.get(ChatIdentity, chat_identity_id)
        return identity.conversation_ref if identity is not None else None


async def keep_reference(core: Core, chat_identity_id: int, ref: dict[str, Any]) -> None:
    """`store_conversation_ref` in a transaction of its own."""
    async with core.store.session() as session:
        await store_conversation_ref(session, chat_identity_id, ref)


async def remember_install(
    core: Core, chat_identity_id: int, ref: dict[str, Any], practice_id: int, platform: str,
    channel: Channel | None,
) -> bool:
    """The bot was installed by this person (in `channel`, when not in a 1:1 chat): remember both at once.

    True when this call stored the conversation first, so it is greeted once: Teams announces one
    install with two activities at the same moment, and both land here.
    """
    async with core.store.session() as session:
        new = await store_conversation_ref(session, chat_identity_id, ref, lock=True)
        if channel is not None:
            person = await session.get(ChatIdentity, chat_identity_id)
            who = f"{person.platform}:{person.workspace_id}/{person.user_id}" if person else "system:chat"
            stored = await remember_channel(session, practice_id, platform, channel.workspace_id,
                                            channel.conversation_id, channel.name, channel.ref, actor=who)
            new = stored.created
        return new


async def staff_ids(core: Core, practice_id: int, platform: str) -> list[str]:
    """`staff_user_ids` in a transaction of its own."""
    async with core.store.session() as session:
        return await staff_user_ids(session, practice_id, platform)


async def reachable(core: Core, notification: Notification, platform: str) -> list[tuple[int, dict[str, Any] | None]]:
    """(chat identity id, stored conversation reference) of each recipient of `notification` on `platform`."""
    async with core.store.session() as session:
        return [(t.id, t.conversation_ref) for t in await recipients(session, notification, platform)]


async def chat_recipients(core: Core, n: Notification) -> list[tuple[ChatPerson, frozenset[str]]]:
    """Who gets `n` on every platform, with their roles: a practitioner's identities, one identity, or
    a practice's admins or staff; audience "staff" goes to the practice's staff channel on a platform
    that has one stored, and as DMs to that platform's staff and admins elsewhere ("ops": its admins)."""
    async with core.store.session() as session:
        stmt = select(ChatIdentity).where(ChatIdentity.practice_id == n.practice_id)
        channels = await _staff_channels(session, n) if n.audience in ("staff", "ops") else {}
        dm_roles = ("admin",) if n.audience == "ops" else ("admin", "staff")
        if channels:
            # A platform with a staff channel gets the channel; the others DM their staff.
            stmt = stmt.where(
                ChatIdentity.id.in_(select(Role.chat_identity_id).where(Role.role.in_(dm_roles)))
                & ChatIdentity.platform.not_in(list(channels))
                | ChatIdentity.id.in_(list(channels.values()))
            )
        elif n.audience in ("admins", "staff", "ops"):
            wanted = ("admin",) if n.audience in ("admins", "ops") else ("admin", "staff")
            stmt = stmt.where(ChatIdentity.id.in_(select(Role.chat_identity_id).where(Role.role.in_(wanted))))
        elif n.chat_identity_id is not None:
            stmt = stmt.where(ChatIdentity.id == n.chat_identity_id)
        elif n.practitioner_id is not None:
            stmt = stmt.where(ChatIdentity.practitioner_id == n.practitioner_id)
        else:
            return []
        people = list((await session.scalars(stmt.order_by(ChatIdentity.id))).all())
        roles: dict[int, set[str]] = {}
        if people:
            rows = await session.execute(
                select(Role.chat_identity_id, Role.role).where(Role.chat_identity_id.in_([p.id for p in people]))
            )
            for ident_id, role in rows:
                roles.setdefault(int(ident_id), set()).add(str(role))
        return [(ChatPerson.of(p), frozenset(roles.get(p.id, ()))) for p in people]


async def _staff_channels(session: AsyncSession, n: Notification) -> dict[str, int]:
    """platform -> chat identity id of the practice's staff channel there."""
    practice = await session.get(Practice, n.practice_id)
    stored = ((practice.settings or {}).get(STAFF_CHANNEL_KEY) or {}) if practice is not None else {}
    return {str(k): int(v) for k, v in stored.items() if isinstance(v, int) or (str(v).isascii() and str(v).isdigit())}
