"""Connecting an account, for every integration: the OAuth round trip's single-use state, and the one
place that writes a Connection with the calendars its platform discovered.

Adapters return plain data (`Connected`); the rows are written here, once, in one transaction, so a
connect either stores the connection with all its calendars or nothing. New calendars get the
integration's default roles (its primary calendar one, the others another) and the read-only flag
the adapter reported. `refresh_calendars` re-runs discovery: new calendars are added with the same
defaults, known ones keep their role and get their name, zone and read-only flag updated. Signing in
again to an account whose sign-in expired revives that connection rather than adding a second one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import CalendarInfo, ConnectionInfo, Refused
from sync.contract.integration import Connected, Integration
from sync.integrations import registry
from sync.integrations.providers import connection_info
from sync.runtime.core import Core
from sync.store import audit
from sync.store.model import Calendar, ChatIdentity, Connection, OAuthState, utcnow

__all__ = [
    "STATE_TTL",
    "PendingConnect",
    "SavedConnection",
    "begin_oauth",
    "calendar_view",
    "default_role",
    "finish_oauth",
    "redirect_uri",
    "refresh_calendars",
    "save_connection",
]

#: How long a sign-in link works.
STATE_TTL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class PendingConnect:
    """A sign-in link for one person, valid once until `expires_at`."""

    url: str
    state: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SavedConnection:
    """What a connect or refresh stored: the connection and its calendars (as plain rows), and what is new."""

    connection_id: int
    integration: str
    account: str
    calendars: list[dict[str, Any]]
    added: int = 0
    #: The connection's (non-secret) configuration, e.g. a practice-wide connection's mapped users.
    config: dict[str, Any] = field(default_factory=dict)
    practice_id: int = 0

    def summary(self, title: str) -> str:
        """What was found and what to do next, in a sentence for the person who connected."""
        found = ", ".join(
            f"{c['name'] or 'calendar'} ({c['role']}{', read only' if c['read_only'] else ''})" for c in self.calendars
        )
        count = len(self.calendars)
        return (
            f"{title} connected for {self.account or 'the account'}: {count} calendar{'' if count == 1 else 's'} "
            f"found{': ' + found if found else ''}. clinicbot syncs them shortly: bookings come from the source "
            "calendar, the others block busy times. `status` shows them; an admin changes roles with "
            "`clinicbot calendar set`."
        )


def redirect_uri(core: Core, integration: str) -> str:
    """The OAuth callback route of this server for an integration."""
    return f"{core.settings.base_url()}/oauth/{integration}/callback"


def _transport(core: Core) -> Any:
    return core.services.http_transport


def _oauth(integration: Integration) -> Any:
    flow = integration.connect.oauth
    if flow is None:
        raise Refused(f"{integration.title} does not connect by sign-in; `connect {integration.name}` says how")
    return flow


async def begin_oauth(
    core: Core,
    name: str,
    *,
    practice_id: int,
    chat_identity_id: int | None,
    practitioner_id: int | None = None,
    options: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> PendingConnect:
    """Start a sign-in: keep the integration's secret in a single-use, expiring state bound to this person."""
    integration = registry.get(name)
    flow = _oauth(integration)
    if not integration.is_configured(core.settings):
        raise Refused(f"{integration.title} sign-in is not set up on this server: {integration.connect.setup_hint}")
    start = await flow.begin(
        core.settings, redirect_uri=redirect_uri(core, name), options=dict(options or {}), transport=_transport(core)
    )
    expires = (now or core.clock()) + STATE_TTL
    async with core.store.session() as session:
        session.add(
            OAuthState(
                state=start.state,
                purpose=name,
                practice_id=practice_id,
                chat_identity_id=chat_identity_id,
                secret={**start.secret, "practitioner_id": practitioner_id},
                expires_at=expires,
            )
        )
    return PendingConnect(start.url, start.state, expires)


async def finish_oauth(
    core: Core, name: str, query: Mapping[str, str], *, now: datetime | None = None, actor: str | None = None
) -> SavedConnection:
    """Finish a sign-in from its callback query: use the state up, redeem the code, store what was found.

    An unknown, used or expired state changes nothing. The state is used up before the code is
    redeemed, so a replayed callback never connects twice, even while the first is still running.
    """
    integration = registry.get(name)
    flow = _oauth(integration)
    moment = now or core.clock()
    again = f"run `connect {integration.chat_word}` again"
    async with core.store.session() as session:
        row = await session.scalar(
            select(OAuthState)
            .where(OAuthState.state == query.get("state", ""), OAuthState.purpose == name)
            .with_for_update()
        )
        if row is None or row.used_at is not None:
            raise Refused(f"This {integration.title} sign-in link is unknown or was already used; {again}.")
        if row.expires_at <= moment:
            raise Refused(f"This {integration.title} sign-in link has expired; {again}.")
        row.used_at = moment
        secret = dict(row.secret or {})
        practice_id, chat_identity_id = row.practice_id, row.chat_identity_id
        person = await session.get(ChatIdentity, chat_identity_id) if chat_identity_id is not None else None
        # The audit names the person who asked for the link as every chat change does ("slack:T1/U2").
        who = f"{person.platform}:{person.workspace_id}/{person.user_id}" if person is not None else None
    practitioner_id = secret.pop("practitioner_id", None)
    connected = await flow.finish(core.settings, secret=secret, query=dict(query), transport=_transport(core))
    return await save_connection(
        core,
        integration,
        connected,
        practice_id=practice_id,
        practitioner_id=practitioner_id,
        extra_config={"chat_identity_id": chat_identity_id},
        reconnect=True,
        actor=actor or who or (f"chat:{chat_identity_id}" if chat_identity_id is not None else f"oauth:{name}"),
    )


def default_role(integration: Integration, info: CalendarInfo, found: list[CalendarInfo]) -> str:
    """A new calendar's role: the integration's primary role for the main (or only) calendar, else its other role."""
    main = info.primary or (len(found) == 1 and not any(c.primary for c in found))
    return integration.connect.primary_role if main else integration.connect.other_role


def calendar_view(cal: Calendar, conn: Connection) -> dict[str, Any]:
    """One calendar as a plain row for listings, the CLI's JSON and chat."""
    return {"id": cal.id, "name": cal.name, "url": cal.remote_id, "connection": conn.id, "provider": conn.provider,
            "role": cal.role, "projection": cal.projection, "sync_enabled": cal.sync_enabled,
            "read_only": cal.read_only,
            "practitioner": cal.practitioner_id if cal.practitioner_id is not None else conn.practitioner_id,
            "last_full_sync_at": cal.last_full_sync_at}


def _new_calendar(integration: Integration, conn: Connection, info: CalendarInfo,
                  found: list[CalendarInfo], now: datetime) -> Calendar:
    cal = Calendar(connection_id=conn.id, remote_id=info.remote_id, name=info.name, timezone=info.timezone,
                   role=default_role(integration, info, found), projection="initials", read_only=info.read_only)
    if cal.role == "mirror":
        cal.ask_backfill(now)  # a mirror connected after appointments exist receives them too
    return cal


async def save_connection(
    core: Core,
    integration: Integration | str,
    connected: Connected,
    *,
    practice_id: int,
    practitioner_id: int | None,
    actor: str,
    extra_config: Mapping[str, Any] | None = None,
    allow_empty: bool = False,
    reconnect: bool = False,
) -> SavedConnection:
    """Store a Connection and every calendar it discovered in one transaction; audited as connection.add.

    A connection without calendars is refused unless `allow_empty` (a practice-wide connection whose
    staff are mapped later, then found by `refresh_calendars`). With `reconnect` (a sign-in, whose
    account is a person's identity), a connection the practice has to the same account gets the new
    credentials instead (`_reconnect`); feeds and servers are told apart by URL, not by host, so
    they always make a new connection.
    """
    chosen = registry.get(integration) if isinstance(integration, str) else integration
    if not connected.calendars and not allow_empty:
        raise Refused(f"the {chosen.title} account has no calendars clinicbot can use")
    async with core.store.session() as s:
        known = await s.scalar(
            select(Connection).where(Connection.practice_id == practice_id, Connection.provider == chosen.name,
                                     Connection.account == connected.account)
            .order_by(Connection.id).limit(1)) if reconnect and connected.account else None
        if known is not None:
            return await _reconnect(s, chosen, known, connected, practitioner_id, actor, extra_config)
        conn = Connection(
            practice_id=practice_id, practitioner_id=practitioner_id, provider=chosen.name,
            account=connected.account, config={**connected.config, **(extra_config or {})},
            credentials=connected.credentials, status="active",
            window_days_back=core.settings.sync_days_back, window_days_ahead=core.settings.sync_days_ahead,
        )
        s.add(conn)
        await s.flush()
        rows = []
        for info in connected.calendars:
            cal = _new_calendar(chosen, conn, info, connected.calendars, core.clock())
            s.add(cal)
            await s.flush()
            rows.append(calendar_view(cal, conn))
        await audit.record(s, actor=actor, action="connection.add", practice_id=practice_id,
                           details={"connection_id": conn.id, "provider": chosen.name, "calendars": len(rows)})
    if core.services.sync_queue is not None:
        # The first sync now, not at the next poll: it reads the bookings, and the push set-up after it
        # makes the platform's webhook subscriptions, so a connect is live within seconds.
        core.services.sync_queue.request(conn.id, reason="connected")
    return SavedConnection(conn.id, chosen.name, connected.account, rows, added=len(rows), config=dict(conn.config),
                           practice_id=practice_id)


async def _reconnect(
    s: AsyncSession, integration: Integration, conn: Connection, connected: Connected, practitioner_id: int | None,
    actor: str, extra_config: Mapping[str, Any] | None,
) -> SavedConnection:
    """Signing in again to an account the practice has: new credentials on the same connection.

    Its calendars keep their roles, links and history (a second connection would import every
    booking twice); calendars found for the first time are added with the default roles. A
    connection paused by an expired sign-in becomes active, so its sync and parked writes resume.
    """
    before = conn.status
    conn.credentials = connected.credentials
    conn.config = {**(conn.config or {}), **connected.config, **(extra_config or {})}
    conn.status, conn.last_error, conn.last_error_at = "active", None, None
    if conn.practitioner_id is None:
        conn.practitioner_id = practitioner_id
    known = {c.remote_id: c for c in (await s.scalars(select(Calendar).where(Calendar.connection_id == conn.id)))}
    added = 0
    for info in connected.calendars:
        cal = known.get(info.remote_id)
        if cal is None:
            cal = _new_calendar(integration, conn, info, connected.calendars, utcnow())
            s.add(cal)
            known[info.remote_id] = cal
            added += 1
        else:
            cal.name, cal.read_only = info.name or cal.name, info.read_only
            if cal.read_only and cal.role == "mirror":
                cal.role = "busy"
    await s.flush()
    rows = [calendar_view(c, conn) for c in sorted(known.values(), key=lambda c: c.id)]
    await audit.record(s, actor=actor, action="connection.reconnect", practice_id=conn.practice_id,
                       before={"status": before}, after={"status": "active"},
                       details={"connection_id": conn.id, "provider": integration.name, "added": added})
    return SavedConnection(conn.id, integration.name, conn.account, rows, added=added, config=dict(conn.config),
                           practice_id=conn.practice_id)


async def refresh_calendars(core: Core, connection_id: int, *, actor: str) -> SavedConnection:
    """Run discovery again: add new calendars with the default roles, update known ones' name, zone and
    read-only flag (their roles stay), and leave calendars no longer found as they are (their history
    stays; `calendar set --sync off` or removing the connection retires them)."""
    async with core.store.session() as s:
        conn = await s.get(Connection, connection_id)
        if conn is None:
            raise Refused(f"there is no connection {connection_id}; `clinicbot connection list` shows them")
        info: ConnectionInfo = connection_info(conn, core)
        name = conn.provider
    integration = registry.get(name)
    found = await registry.calendar_slot(name).discover(info, core.settings)
    async with core.store.session() as s:
        conn2 = await s.get(Connection, connection_id)
        if conn2 is None:
            raise Refused(f"connection {connection_id} was removed meanwhile")
        known = {c.remote_id: c for c in (await s.scalars(select(Calendar).where(Calendar.connection_id == conn2.id)))}
        added = 0
        for cal_info in found:
            cal = known.get(cal_info.remote_id)
            if cal is None:
                cal = _new_calendar(integration, conn2, cal_info, found, core.clock())
                s.add(cal)
                known[cal_info.remote_id] = cal
                added += 1
            else:
                cal.name, cal.read_only = cal_info.name, cal_info.read_only
                cal.timezone = cal_info.timezone or cal.timezone
                if cal.read_only and cal.role == "mirror":
                    cal.role = "busy"  # a calendar that became read-only cannot take copies any more
        await s.flush()
        rows = [calendar_view(c, conn2) for c in sorted(known.values(), key=lambda c: c.id)]
        await audit.record(s, actor=actor, action="connection.refresh", practice_id=conn2.practice_id,
                           details={"connection_id": conn2.id, "found": len(found), "added": added})
        account, config, practice_id = conn2.account, dict(conn2.config or {}), conn2.practice_id
    return SavedConnection(connection_id, name, account, rows, added=added, config=config, practice_id=practice_id)
