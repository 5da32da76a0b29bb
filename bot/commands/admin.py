"""Handlers for settings and people: sync on/off, connect, status, whoami, roles, help."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands.access import Forbidden, require_admin, require_any_role, require_staff
from bot.commands.appointments import find_person_practitioner
from bot.commands.errors import ParseError
from bot.commands.grammar import (
    CONNECT_PROVIDERS,
    GRAMMAR,
    ChangeRole,
    Connect,
    RefreshCalendars,
    SetSync,
    ShowHelp,
    UserRef,
)
from bot.commands.identity import Actor
from bot.commands.present import moment_label
from bot.views import ConnectInfo, ConnectionState, Help, HelpEntry, Notice, ReminderHealth, Status, View, Whoami
from sync.contract import ProviderError, Refused
from sync.integrations import registry
from sync.integrations.connect import begin_oauth
from sync.services.connections import ConnectionError_, refresh_connection
from sync.services.staff import unassigned_calendars
from sync.notify.reminders.status import reminder_status
from sync.runtime.core import Core
from sync.store import audit
from sync.store.model import Calendar, ChatIdentity, Connection, OutboxOp, Practice, Practitioner, Role

__all__ = ["CONNECT_URL_SERVICE", "change_role", "connect", "help_view", "refresh", "set_sync", "status", "whoami"]

#: core.services key: async (core, provider, practice_id, chat_identity_id, practitioner_id) -> sign-in URL.
#: Set by embedders that run their own sign-in pages; otherwise the integration's OAuth flow is used.
CONNECT_URL_SERVICE = "connect_url"
ConnectUrl = Callable[[Core, str, int, int, int | None], Awaitable[str]]



async def _sign_in_url(core: Core, actor: Actor, provider: str) -> str:
    """A single-use sign-in link bound to this chat user, from the integration's OAuth flow.

    A `core.services["connect_url"]` hook wins (embedders with their own sign-in pages).
    """
    practitioner_id = None if actor.is_admin else actor.practitioner_id
    hook: Any = core.services.get(CONNECT_URL_SERVICE)
    if hook is not None:
        return str(await hook(core, provider, actor.practice_id, actor.chat_identity_id, practitioner_id))
    pending = await begin_oauth(
        core,
        provider,
        practice_id=actor.practice_id,
        chat_identity_id=actor.chat_identity_id,
        practitioner_id=practitioner_id,
        now=core.clock(),
    )
    return pending.url


def help_view(cmd: ShowHelp) -> View:
    entries = tuple(HelpEntry(s.usage, s.summary, s.example, s.needs) for s in GRAMMAR)
    if cmd.topic:
        chosen = tuple(e for s, e in zip(GRAMMAR, entries, strict=True) if cmd.topic in (s.name, *s.aliases))
        if not chosen:
            raise ParseError(f"there is no command {cmd.topic!r}", "help reschedule")
        return Help(chosen)
    return Help(entries, intro="Type `/clinic <command>`. Times are read in the practice's time zone.")


async def whoami(core: Core, actor: Actor) -> View:
    async with core.store.session() as session:
        practice = await session.get(Practice, actor.practice_id)
        pr = await session.get(Practitioner, actor.practitioner_id) if actor.practitioner_id else None
    return Whoami(
        display=actor.display,
        platform=actor.platform,
        practice=practice.name if practice else "?",
        roles=tuple(sorted(actor.roles)),
        practitioner=pr.name if pr else None,
        timezone=practice.timezone if practice else "UTC",
    )


async def status(core: Core, actor: Actor) -> View:
    require_staff(actor, "see the sync status")
    async with core.store.session() as session:
        practice = await session.get(Practice, actor.practice_id)
        assert practice is not None
        conns = list(
            (
                await session.scalars(
                    select(Connection).where(Connection.practice_id == practice.id).order_by(Connection.id)
                )
            ).all()
        )
        counts: dict[tuple[int, str], int] = {}
        if conns:
            rows = await session.execute(
                select(OutboxOp.connection_id, OutboxOp.status, func.count())
                .where(
                    OutboxOp.connection_id.in_([c.id for c in conns]),
                    OutboxOp.status.in_(("pending", "failed")),
                )
                .group_by(OutboxOp.connection_id, OutboxOp.status)
            )
            counts = {(int(r[0]), str(r[1])): int(r[2]) for r in rows}
        cals = await session.execute(
            select(Calendar.connection_id, Calendar.name, Calendar.role, Calendar.sync_enabled, Calendar.remote_id)
            .where(Calendar.connection_id.in_([c.id for c in conns]))
            .order_by(Calendar.id)
        )
        # Booking-platform staff nobody is mapped to: their bookings are kept, and listed here.
        providers = {c.id: c.provider for c in conns}
        waiting = {(p, e): n for p, e, _, n in await unassigned_calendars(session, practice.id)}
        by_conn: dict[int, list[str]] = {}
        for cid, name, role, enabled, remote_id in cals:
            label = f"{name or 'calendar'} ({role}{'' if enabled else ', off'})"
            unassigned = waiting.get((providers[int(cid)], remote_id), 0)
            if unassigned:
                label += (f": {unassigned} booking{'' if unassigned == 1 else 's'} unassigned, "
                          f"`staff map {providers[int(cid)]} {remote_id} @practitioner`")
            by_conn.setdefault(int(cid), []).append(label)
        rem = await reminder_status(session, core.clock(), practice_id=practice.id)
        reminders = ReminderHealth(
            planned=rem.planned,
            retrying=rem.retrying,
            failed=rem.failed,
            dropped=rem.dropped,
            unknown=rem.unknown,
            next_due=moment_label(rem.next_due, practice.timezone) if rem.next_due else "",
            last_error=(rem.last_error or "")[:200],
        )
    states = []
    for c in conns:
        health = {"active": "ok", "auth_expired": "expired: reconnect", "disabled": "disabled"}.get(
            c.status, f"error: {c.status}"
        )
        states.append(
            ConnectionState(
                connection_id=c.id,
                provider=c.provider,
                account=c.account,
                status=c.status,
                sync_enabled=c.sync_enabled,
                last_sync=moment_label(c.last_success_at, practice.timezone) if c.last_success_at else "never",
                pending=counts.get((c.id, "pending"), 0),
                failed=counts.get((c.id, "failed"), 0),
                token_health=health,
                calendars=tuple(by_conn.get(c.id, [])),
                last_error=(c.last_error or "")[:200],
            )
        )
    return Status(
        practice=practice.name,
        connections=tuple(states),
        pending_total=sum(s.pending for s in states),
        failed_total=sum(s.failed for s in states),
        reminders=reminders,
    )


async def _practitioner_scope(session: AsyncSession, actor: Actor, who: UserRef | None) -> Practitioner | None:
    if who is None:
        if not actor.is_admin:
            if actor.practitioner_id is None:
                raise Forbidden("only admins can change sync for the whole practice")
            return await session.get(Practitioner, actor.practitioner_id)
        return None
    pr = await find_person_practitioner(session, actor, who)
    if not actor.is_admin and pr.id != actor.practitioner_id:
        raise Forbidden("you can change sync for your own calendars; admins can change any")
    return pr


async def set_sync(core: Core, actor: Actor, cmd: SetSync) -> View:
    require_any_role(actor)
    word = "on" if cmd.enabled else "off"
    async with core.store.session() as session:
        who = cmd.target if isinstance(cmd.target, UserRef) else None
        pr = await _practitioner_scope(session, actor, who)
        conns = list(
            (
                await session.scalars(
                    select(Connection).where(Connection.practice_id == actor.practice_id).order_by(Connection.id)
                )
            ).all()
        )
        cals = list(
            (
                await session.scalars(
                    select(Calendar).where(Calendar.connection_id.in_([c.id for c in conns])).order_by(Calendar.id)
                )
            ).all()
        )
        if pr is not None:
            conns = [c for c in conns if c.practitioner_id == pr.id]
            cals = [k for k in cals if k.practitioner_id == pr.id or k.connection_id in {c.id for c in conns}]
        changed_conns: list[Connection] = []
        changed_cals: list[Calendar] = []
        if isinstance(cmd.target, str):
            name = cmd.target.lower()
            provider = CONNECT_PROVIDERS.get(name, name)
            changed_conns = [c for c in conns if c.provider == provider or c.account.lower() == name]
            changed_cals = [k for k in cals if (k.name or "").lower() == name]
            if not changed_conns and not changed_cals:
                raise ParseError(
                    f"no calendar or connection is called {cmd.target!r}; `status` lists them",
                    "sync off outlook",
                )
        else:
            changed_conns = conns
        if not changed_conns and not changed_cals:
            return Notice("There are no connected calendars to turn sync " + word + " for; try `connect`.")
        for c in changed_conns:
            c.sync_enabled = cmd.enabled
        for k in changed_cals:
            k.sync_enabled = cmd.enabled
        await audit.record(
            session,
            actor=actor.audit_name,
            action=f"sync.{word}",
            practice_id=actor.practice_id,
            details={"connections": [c.id for c in changed_conns], "calendars": [k.id for k in changed_cals]},
        )
    if not cmd.enabled:  # no more webhooks for what no longer syncs (Graph DELETE, Google channels.stop)
        from sync.integrations.push import stop_push_for

        await stop_push_for(
            core, connection_ids=[c.id for c in changed_conns], calendar_ids=[k.id for k in changed_cals]
        )
    parts = [f"{c.provider} {c.account}".strip() for c in changed_conns] + [k.name or "calendar" for k in changed_cals]
    return Notice(f"Sync is {word} for " + ", ".join(parts) + ".", title=f"Sync {word}")


async def connect(core: Core, actor: Actor, cmd: Connect) -> View:
    """How to connect the integration asked for: a sign-in link, or the steps its kind of connect takes."""
    require_any_role(actor)
    if not actor.is_admin and actor.practitioner_id is None:
        raise Forbidden("admins connect the practice's calendars; practitioners connect their own")
    try:
        integration = registry.get(cmd.provider)
    except ProviderError:
        return ConnectInfo(
            cmd.provider,
            f"Connect {cmd.provider}",
            steps=(
                f"The {cmd.provider} integration is not loaded on this server.",
                "Ask the server's admin to check `clinicbot doctor`.",
            ),
        )
    title = f"Connect {integration.title}"
    if integration.connect.kind != "oauth2":
        return ConnectInfo(cmd.provider, title, steps=integration.connect.steps)
    if not integration.is_configured(core.settings):
        return ConnectInfo(
            cmd.provider,
            title,
            steps=(
                f"{title} sign-in is not set up on this server yet.",
                f"Ask the server's admin to {integration.connect.setup_hint or 'set it up'} and restart clinicbot; "
                f"then run `connect {cmd.typed}` again.",
            ),
        )
    try:
        url = await _sign_in_url(core, actor, cmd.provider)
    except Refused as exc:
        return ConnectInfo(cmd.provider, title, steps=(str(exc), "Ask the server's admin to check `clinicbot doctor`."))
    return ConnectInfo(
        cmd.provider,
        title,
        url=url,
        steps=(
            "Sign in with the account whose calendar clinicbot should use. The link works once, for 10 minutes.",
            "clinicbot then stores the account's calendars: the main one as the source of your bookings, "
            "the others for busy times. `status` shows them.",
        ),
    )


async def refresh(core: Core, actor: Actor, cmd: RefreshCalendars) -> View:
    """`refresh <connection>`: discovery again; new calendars are added with the default roles."""
    require_admin(actor, "refresh a connection's calendars")
    try:
        saved = await refresh_connection(core, actor.practice_id, cmd.connection, actor=actor.audit_name)
    except ConnectionError_ as exc:
        raise ParseError(str(exc), "refresh 3") from None
    found = ", ".join(
        f"{c['name'] or 'calendar'} ({c['role']}{', read only' if c['read_only'] else ''})" for c in saved.calendars
    )
    new = f"{saved.added} new" if saved.added else "nothing new"
    return Notice(
        f"Connection {saved.connection_id} ({saved.account}): {new}. Calendars: {found or 'none'}. "
        "Roles are changed with `clinicbot calendar set`.",
        title="Calendars refreshed",
    )


async def _identity_for(session: AsyncSession, actor: Actor, who: UserRef) -> ChatIdentity:
    if who.platform_user_id:
        found = await session.scalar(
            select(ChatIdentity).where(
                ChatIdentity.platform == actor.platform,
                ChatIdentity.workspace_id == actor.workspace_id,
                ChatIdentity.user_id == who.platform_user_id,
            )
        )
        if found is None:
            found = ChatIdentity(
                practice_id=actor.practice_id,
                platform=actor.platform,
                workspace_id=actor.workspace_id,
                user_id=who.platform_user_id,
            )
            session.add(found)
            await session.flush()
        if found.practice_id != actor.practice_id:
            raise Forbidden("that person belongs to another practice")
        return found
    name = (who.name or "").lower()
    rows = list(
        (
            await session.scalars(
                select(ChatIdentity).where(
                    ChatIdentity.practice_id == actor.practice_id,
                    ChatIdentity.platform == actor.platform,
                    func.lower(ChatIdentity.display_name) == name,
                )
            )
        ).all()
    )
    if len(rows) != 1:
        why = "nobody here is called" if not rows else "more than one person is called"
        raise ParseError(f"{why} {who}; mention them so I know who you mean", "role grant staff @alex")
    return rows[0]


async def change_role(core: Core, actor: Actor, cmd: ChangeRole) -> View:
    require_admin(actor, "grant or revoke roles")
    async with core.store.session() as session:
        target = await _identity_for(session, actor, cmd.user)
        label = target.display_name or str(cmd.user)
        existing = await session.scalar(select(Role).where(Role.chat_identity_id == target.id, Role.role == cmd.role))
        practitioner: Practitioner | None = None
        if cmd.grant and cmd.role == "practitioner":
            ref = cmd.practitioner or (UserRef(name=target.display_name) if target.display_name else None)
            if ref is None:
                raise ParseError("which practitioner is this person?", "role grant practitioner @sam @dr-lee")
            try:
                practitioner = await find_person_practitioner(session, actor, ref)
            except ParseError:
                raise ParseError(
                    f"which practitioner is {label}? name their handle",
                    "role grant practitioner @sam @dr-lee",
                ) from None
        if cmd.grant:
            if existing is not None and (practitioner is None or target.practitioner_id == practitioner.id):
                return Notice(f"{label} already has the {cmd.role} role.")
            if existing is None:
                session.add(Role(chat_identity_id=target.id, role=cmd.role, granted_by=actor.audit_name))
            if practitioner is not None:
                target.practitioner_id = practitioner.id
        else:
            if existing is None:
                return Notice(f"{label} does not have the {cmd.role} role.")
            if cmd.role == "admin":
                admins = await session.scalar(
                    select(func.count())
                    .select_from(Role)
                    .join(ChatIdentity, ChatIdentity.id == Role.chat_identity_id)
                    .where(ChatIdentity.practice_id == actor.practice_id, Role.role == "admin")
                )
                if (admins or 0) <= 1:
                    raise Forbidden("that is the last admin; grant admin to someone else first")
            await session.delete(existing)
            if cmd.role == "practitioner":
                target.practitioner_id = None
        await session.flush()
        await audit.record(
            session,
            actor=actor.audit_name,
            action="role.grant" if cmd.grant else "role.revoke",
            practice_id=actor.practice_id,
            after={
                "chat_identity_id": target.id,
                "role": cmd.role,
                "practitioner_id": practitioner.id if practitioner else None,
            },
        )
    verb = "now has" if cmd.grant else "no longer has"
    extra = f" (as {practitioner.name})" if practitioner else ""
    return Notice(f"{label} {verb} the {cmd.role} role{extra}.", title="Roles")
