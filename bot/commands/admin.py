"""Handlers for settings and people: sync on/off, connect, status, whoami, roles, help."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.commands.access import Forbidden, require_admin, require_any_role, require_staff
from bot.commands.appointments import person_practitioner
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
from sync.contract.integration import Integration
from sync.contract.troubleshooting import advice
from sync.integrations import registry
from sync.integrations.connect import begin_oauth
from sync.notify.reminders.status import practice_reminder_status
from sync.runtime.core import Core
from sync.services import connections, identities, practices
from sync.services import shifts as shift_service
from sync.services import status as status_service
from sync.services.attachments import attachment_counts
from sync.services.connections import ConnectionError_, refresh_connection
from sync.services.form_connections import add_signed_form
from sync.services.identities import PersonRef

__all__ = ["CONNECT_URL_SERVICE", "change_role", "connect", "help_view", "refresh", "set_sync", "status", "whoami"]

#: core.services key: async (core, provider, practice_id, chat_identity_id, practitioner_id) -> sign-in URL.
#: Set by embedders that run their own sign-in pages; otherwise the integration's OAuth flow is used.
CONNECT_URL_SERVICE = "connect_url"
ConnectUrl = Callable[[Core, str, int, int, int | None], Awaitable[str]]



async def _sign_in_url(core: Core, actor: Actor, provider: str, options: dict[str, str] | None = None) -> str:
    """A single-use sign-in link bound to this chat user, from the integration's OAuth flow.

    A `core.services.connect_url` hook wins (embedders with their own sign-in pages).
    """
    practitioner_id = None if actor.is_admin else actor.practitioner_id
    hook: Any = core.services.connect_url
    if hook is not None:
        return str(await hook(core, provider, actor.practice_id, actor.chat_identity_id, practitioner_id))
    pending = await begin_oauth(
        core,
        provider,
        practice_id=actor.practice_id,
        chat_identity_id=actor.chat_identity_id,
        practitioner_id=practitioner_id,
        options=options,
        now=core.clock(),
    )
    return pending.url


def _connect_options(integration: Integration, typed: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The options typed after `connect <platform>`, checked against the integration's own (name, choices)."""
    known = {o.name: o for o in integration.connect.options}
    chosen: dict[str, str] = {}
    for name, value in typed:
        option = known.get(name)
        flag = "--" + name.replace("_", "-")
        if option is None:
            offered = ", ".join(o.flag for o in known.values()) or "none"
            raise ParseError(f"{integration.title} has no option {flag}; its options: {offered}",
                             f"connect {integration.name}")
        if option.choices and value.lower() not in option.choices:
            raise ParseError(f"{flag} is one of {', '.join(option.choices)}, not {value!r}",
                             f"connect {integration.name} {flag} {option.choices[0]}")
        chosen[name] = value.lower() if option.choices else value
    return chosen


def help_view(cmd: ShowHelp) -> View:
    entries = tuple(HelpEntry(s.usage, s.summary, s.example, s.needs) for s in GRAMMAR)
    if cmd.topic:
        chosen = tuple(e for s, e in zip(GRAMMAR, entries, strict=True) if cmd.topic in (s.name, *s.aliases))
        if not chosen:
            raise ParseError(f"there is no command {cmd.topic!r}", "help reschedule")
        return Help(chosen)
    # How to type a command differs per platform: each renderer says it (bot.slack.render, bot.teams.cards).
    return Help(entries, intro="Times are read in the practice's time zone.")


async def whoami(core: Core, actor: Actor) -> View:
    me = await practices.profile(core, actor.practice_id, actor.practitioner_id)
    return Whoami(
        display=actor.display,
        platform=actor.platform,
        practice=me.practice,
        roles=tuple(sorted(actor.roles)),
        practitioner=me.practitioner,
        timezone=me.timezone,
    )


async def status(core: Core, actor: Actor) -> View:
    require_staff(actor, "see the sync status")
    st = await status_service.practice_status(core, actor.practice_id)
    rem = await practice_reminder_status(core, actor.practice_id)
    kept, purged = await attachment_counts(core, actor.practice_id)
    reminders = ReminderHealth(
        planned=rem.planned,
        retrying=rem.retrying,
        failed=rem.failed,
        dropped=rem.dropped,
        unknown=rem.unknown,
        next_due=moment_label(rem.next_due, st.timezone) if rem.next_due else "",
        last_error=(rem.last_error or "")[:200],
    )
    states = []
    for c in st.connections:
        health = {"active": "ok", "auth_expired": "expired: reconnect", "disabled": "disabled",
                  "removing": "removing: its webhooks are being deleted"}.get(
            c.status, f"error: {c.status}"
        )
        states.append(
            ConnectionState(
                connection_id=c.connection_id,
                provider=c.provider,
                account=c.account,
                status=c.status,
                sync_enabled=c.sync_enabled,
                last_sync=moment_label(c.last_success_at, st.timezone) if c.last_success_at else "never",
                pending=c.pending_ops,
                failed=c.failed_ops,
                token_health=health,
                calendars=tuple(_calendar_label(c.provider, k) for k in st.calendars.get(c.connection_id, ())),
                last_error=_error_words(c.last_error),
            )
        )
    return Status(
        practice=st.practice,
        connections=tuple(states),
        pending_total=sum(s.pending for s in states),
        failed_total=sum(s.failed for s in states),
        reminders=reminders,
        files_kept=kept,
        files_purged=purged,
        shift_publish=_shift_publish(await shift_service.last_publishes(core, actor.practice_id), st.timezone),
    )


def _shift_publish(found: list[shift_service.LastPublish], zone: str) -> str:
    """The last shift publish in words, in the practice's zone."""
    if not found:
        return ""
    last = found[0]
    if last.at is None:
        return (f"Shifts: never published to Outlook; {last.pending} change{'s' if last.pending != 1 else ''} "
                "pending" + (f" from {last.origin}" if last.origin else ""))
    words = (f"Last shift publish {moment_label(last.at, zone)} from {last.origin or 'the schedule'}: "
             f"{last.created} created, {last.updated} updated, {last.deleted} deleted, "
             f"{last.skipped_unmapped} skipped (no sign-in), {last.failed} failed; {last.pending} pending")
    return words + (f". Last error: {last.last_error}" if last.failed and last.last_error else "")


def _error_words(last_error: str | None) -> str:
    """A connection's last error, with the troubleshooting words when it is one the person can fix."""
    found = advice(last_error)
    if found is None:
        return (last_error or "")[:200]
    return f"{found.title}: {found.words}"


def _calendar_label(provider: str, cal: status_service.CalendarState) -> str:
    """A calendar in `status`; booking-platform staff nobody is mapped to say how many bookings wait, and how to map."""
    label = f"{cal.name} ({cal.role}{'' if cal.sync_enabled else ', off'})"
    if cal.backfill is not None:
        label += f": {cal.backfill.describe()}"
    if cal.unassigned:
        label += (f": {cal.unassigned} booking{'' if cal.unassigned == 1 else 's'} unassigned, "
                  f"`staff` to map them with a picker (or `staff map {provider} {cal.remote_id} @practitioner`)")
    return label


async def _practitioner_scope(core: Core, actor: Actor, who: UserRef | None) -> int | None:
    """Whose calendars a `sync on|off` changes: None for the whole practice (admins only)."""
    if who is None:
        if not actor.is_admin:
            if actor.practitioner_id is None:
                raise Forbidden("only admins can change sync for the whole practice")
            return actor.practitioner_id
        return None
    pr = await person_practitioner(core, actor, who)
    if not actor.is_admin and pr.id != actor.practitioner_id:
        raise Forbidden("you can change sync for your own calendars; admins can change any")
    return pr.id


def _connected_as(word: str) -> str:
    """The integration a typed word's connections are stored under: a route through one integration is that one's."""
    name = CONNECT_PROVIDERS.get(word, word)
    try:
        found = registry.get(name)
    except ProviderError:
        return name
    return found.connect.via[0] if found.is_route and len(found.connect.via) == 1 else name


async def set_sync(core: Core, actor: Actor, cmd: SetSync) -> View:
    require_any_role(actor)
    word = "on" if cmd.enabled else "off"
    practitioner_id = await _practitioner_scope(core, actor, cmd.target if isinstance(cmd.target, UserRef) else None)
    name = cmd.target.lower() if isinstance(cmd.target, str) else None
    try:
        switched = await connections.set_sync(
            core, actor.practice_id, enabled=cmd.enabled, actor=actor.audit_name, practitioner_id=practitioner_id,
            name=name, provider=_connected_as(name) if name is not None else None,
        )
    except connections.NothingNamed:
        raise ParseError(
            f"no calendar or connection is called {cmd.target!r}; `status` lists them", "sync off outlook"
        ) from None
    if not switched.labels:
        return Notice("There are no connected calendars to turn sync " + word + " for; try `connect`.")
    return Notice(f"Sync is {word} for " + ", ".join(switched.labels) + ".", title=f"Sync {word}")


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
    route: tuple[str, ...] = ()
    if integration.is_route:
        # A platform reached through other integrations: its steps; when it goes through exactly one
        # that signs in, that one's sign-in link too (a choice of several is left to the steps).
        route = integration.connect.steps
        try:
            target = registry.get(integration.connect.via[0]) if len(integration.connect.via) == 1 else None
        except ProviderError:
            target = None
        if target is None or target.connect.kind != "oauth2":
            return ConnectInfo(cmd.provider, title, steps=route)
        integration = target
    options = _connect_options(integration, cmd.options)
    personal = {o.name for o in integration.connect.options if o.personal}
    if set(options) - personal:
        require_admin(actor, f"choose how {integration.title} is connected")
    if options:
        if integration.connect.kind != "oauth2":
            raise ParseError(f"options are chosen at {integration.title}'s sign-in, and it has none here",
                             f"connect {cmd.typed}")
    if integration.connect.kind == "signed_form":
        # A form endpoint: its address and secret, made now and shown this once (admins only).
        require_admin(actor, f"connect {integration.title}")
        made = await add_signed_form(core, integration.name, practice_id=actor.practice_id, actor=actor.audit_name)
        return ConnectInfo(cmd.provider, title, steps=(
            f"Connection {made.connection_id}: the website posts each submission to {made.url}",
            f"Signing secret (shown this once; keep it like a password, on the website's server only): "
            f"{made.secret}",
            *integration.connect.steps[1:],
        ))
    if integration.connect.kind != "oauth2":
        return ConnectInfo(cmd.provider, title, steps=integration.connect.steps)
    if not integration.is_configured(core.settings):
        if "credentials" in integration.connect.kinds:  # it also connects with a key on the command line
            return ConnectInfo(cmd.provider, title, steps=(
                f"{title} sign-in is not set up on this server yet: the server's admin can "
                f"{integration.connect.setup_hint or 'set it up'}.", *integration.connect.steps))
        return ConnectInfo(
            cmd.provider,
            title,
            steps=(
                *route,
                f"{title} sign-in is not set up on this server yet.",
                f"Ask the server's admin to {integration.connect.setup_hint or 'set it up'} and restart clinicbot; "
                f"then run `connect {cmd.typed}` again.",
            ),
        )
    try:
        url = await _sign_in_url(core, actor, integration.name, options)
    except Refused as exc:
        return ConnectInfo(cmd.provider, title, steps=(str(exc), "Ask the server's admin to check `clinicbot doctor`."))
    return ConnectInfo(
        cmd.provider,
        title,
        url=url,
        steps=route or (
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



async def change_role(core: Core, actor: Actor, cmd: ChangeRole) -> View:
    require_admin(actor, "grant or revoke roles")
    practitioner = PersonRef(cmd.practitioner.platform_user_id, cmd.practitioner.name) if cmd.practitioner else None
    try:
        done = await identities.change_role(
            core,
            actor.practice_id,
            actor.platform,
            actor.workspace_id,
            target=PersonRef(cmd.user.platform_user_id, cmd.user.name),
            role=cmd.role,
            grant=cmd.grant,
            actor=actor.audit_name,
            practitioner=practitioner,
        )
    except identities.NoSuchPerson as exc:
        raise ParseError(str(exc), "role grant staff @alex") from None
    except identities.NeedPractitioner as exc:
        raise ParseError(str(exc), "role grant practitioner @sam @dr-lee") from None
    if not done.changed:
        has = "already has" if cmd.grant else "does not have"
        return Notice(f"{done.label} {has} the {cmd.role} role.")
    verb = "now has" if cmd.grant else "no longer has"
    extra = f" (as {done.practitioner})" if done.practitioner else ""
    return Notice(f"{done.label} {verb} the {cmd.role} role{extra}.", title="Roles")
