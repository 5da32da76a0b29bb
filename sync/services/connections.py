"""Connection and calendar administration: add an account (with discovery), list, set roles."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import ConnectionInfo, ProviderError, Refused
from sync.contract.integration import ROLES as CONTRACT_ROLES
from sync.contract.integration import Connected, StaffRef
from sync.engine.projection import PROJECTIONS
from sync.integrations import registry
from sync.integrations.connect import SavedConnection, calendar_view, refresh_calendars, save_connection
from sync.integrations.push import stop_push, stop_push_for
from sync.runtime.core import Core
from sync.services.errors import Invalid
from sync.store import audit
from sync.store.model import Calendar, Connection, ConsentGrant, Practice, Practitioner

__all__ = [
    "ROLES",
    "ConnectionError_",
    "IdentityMapping",
    "NothingNamed",
    "SyncSwitched",
    "add_connection",
    "add_practice_wide",
    "calendar_rows",
    "map_identities",
    "refresh_connection",
    "remove_connection",
    "set_calendar",
    "set_sync",
]

ROLES = CONTRACT_ROLES


class ConnectionError_(Invalid):
    """A user-facing problem with a connection or calendar command."""


class NothingNamed(Invalid):
    """No connection or calendar of the practice goes by the name given."""


@dataclass(frozen=True, slots=True)
class SyncSwitched:
    """What one `set_sync` changed: ids, and a label per connection ("graph lee@x.org") and calendar."""

    enabled: bool
    connection_ids: tuple[int, ...]
    calendar_ids: tuple[int, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AddedConnection:
    connection_id: int
    calendars: list[dict[str, Any]]


async def _practitioner(core: Core, practice_id: int, ref: str | None) -> int | None:
    if ref is None:
        return None
    from sync.services.practices import find_practitioner

    async with core.store.session() as s:
        pr = await find_practitioner(s, practice_id, ref)
    if pr is None:
        raise ConnectionError_(f"there is no practitioner {ref!r}; `clinicbot practitioner list` shows them")
    return pr.id


async def add_connection(
    core: Core, provider: str, url: str, *, username: str | None = None, password: str | None = None,
    practitioner: str | None = None, actor: str,
) -> AddedConnection:
    """Discover the account's calendars and store the connection with them (nothing is written remotely).

    New calendars get the integration's default roles (CalDAV's start as `busy`, so nothing is
    written to a calendar before an admin gives it the mirror or source role; a feed is a `source`)
    and the read-only flag its adapter reported.
    """
    try:
        # The parser the adapters' HTTP client uses: what it refuses must be refused here, with
        # a message, not raised from deep inside discovery.
        host = httpx.URL(url).host or urlsplit(url).hostname or url
    except (httpx.InvalidURL, ValueError) as exc:
        raise ConnectionError_(f"refused: {url[:200]!r} is not a valid URL ({str(exc)[:120]})") from None
    async with core.store.session() as s:
        practice = await s.scalar(select(Practice).order_by(Practice.id).limit(1))
    if practice is None:
        raise ConnectionError_("no practice exists; create one with `clinicbot practice create`")
    practitioner_id = await _practitioner(core, practice.id, practitioner)
    credentials = {"username": username, "password": password} if username or password else None
    info = ConnectionInfo(provider=provider, account=f"{username}@{host}" if username else host,
                          config={"url": url}, credentials=credentials,
                          transport=core.services.http_transport)
    try:
        integration = registry.get(provider)
        found = await registry.calendar_slot(provider).discover(info, core.settings)
    except ProviderError as exc:
        raise ConnectionError_(f"{exc.user_message} ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not found:
        raise ConnectionError_("the account has no calendars")
    saved = await save_connection(
        core, integration, Connected(info.account, info.config, credentials, found),
        practice_id=practice.id, practitioner_id=practitioner_id, actor=actor,
    )
    return AddedConnection(saved.connection_id, saved.calendars)


async def add_practice_wide(
    core: Core, integration_name: str, practice_name: str | None, tenant: str, *, actor: str
) -> SavedConnection:
    """The practice-wide connection of a tenant-consent integration, with the calendars of its mapped staff.

    Refused until an admin granted consent for that tenant (the Teams `consent` flow records it).
    """
    from sync.services.practices import practice_by_name

    integration = registry.get(integration_name)
    flow = integration.connect.tenant
    if flow is None:
        raise ConnectionError_(f"{integration.title} has no practice-wide connection")
    wanted = tenant.strip().lower()
    async with core.store.session() as s:
        practice = await practice_by_name(s, practice_name)
        grant = await s.scalar(
            select(ConsentGrant)
            .where(ConsentGrant.practice_id == practice.id, ConsentGrant.granted.is_(True))
            .order_by(ConsentGrant.at.desc(), ConsentGrant.id.desc())
        )
        if grant is None or (grant.tenant_id or "").lower() != wanted:
            raise Refused(
                f"No admin consent for that {integration.title} tenant yet: an admin runs `consent` in Teams first.",
                provider=integration.name,
            )
        staff = await _staff_refs(s, practice.id, integration.name)
        practice_id = practice.id
    connected = await flow.connect(core.settings, tenant=wanted, staff=staff,
                                   transport=core.services.http_transport)
    return await save_connection(core, integration, connected, practice_id=practice_id, practitioner_id=None,
                                 actor=actor, allow_empty=True)


async def _staff_refs(session: AsyncSession, practice_id: int, integration: str) -> list[StaffRef]:
    """The practice's practitioners (not opted out) as integrations see them, with their identities on
    `integration` from the external-identity table."""
    from sync.services.staff import identities_of

    people = list((await session.scalars(select(Practitioner).where(
        Practitioner.practice_id == practice_id, Practitioner.opted_out.is_(False)).order_by(Practitioner.id))).all())
    found = await identities_of(session, [p.id for p in people], integration)
    return [_staff_ref(p, found.get(p.id, {})) for p in people]


def _staff_ref(p: Practitioner, identities: dict[str, str]) -> StaffRef:
    """A practitioner as integrations see them: plain data, their identities on one integration."""
    return StaffRef(practitioner_id=p.id, name=p.name, email=p.email, identities=identities)


@dataclass(frozen=True, slots=True)
class IdentityMapping:
    """A practitioner's directory identities after `map_identities`, and the connections it updated."""

    practitioner_id: int
    name: str
    identities: dict[str, str]
    #: Addressed by the integration's practice-wide connections (else opted out of them).
    addressed: bool
    connections_updated: list[int]


async def map_identities(
    session: AsyncSession, integration_name: str, practitioner: Practitioner, values: dict[str, str | None], *,
    actor: str,
) -> IdentityMapping:
    """Set (or clear, with every value None) a practitioner's directory identities on an integration
    (Graph: UPN, object id), checked by the integration; the practice-wide (application) connections of
    that integration then address the practice's mapped staff. Raises Refused, StaffError."""
    from sync.services.staff import set_identities

    integration = registry.get(integration_name)
    slot = integration.staff_identities
    if slot is None:
        raise ConnectionError_(f"{integration.title} has no directory identities to map")
    stored = await set_identities(session, practitioner, integration.name, slot.clean(values), actor=actor)
    staff = await _staff_refs(session, practitioner.practice_id, integration.name)
    users = sorted({ref for person in staff if (ref := slot.user_ref(person))})
    rows = await session.scalars(select(Connection).where(
        Connection.practice_id == practitioner.practice_id, Connection.provider == integration.name
    ).order_by(Connection.id))
    changed = []
    for conn in rows:
        if (conn.config or {}).get("mode") == "application":
            conn.config = {**conn.config, "users": users}  # a new dict, so the JSON column is written
            changed.append(conn.id)
    await session.flush()
    addressed = not practitioner.opted_out and slot.user_ref(_staff_ref(practitioner, stored)) is not None
    return IdentityMapping(practitioner.id, practitioner.name, stored, addressed, changed)


async def refresh_connection(core: Core, practice_id: int, ref: str, *, actor: str) -> SavedConnection:
    """Find the calendars of a practice's connection again, named by id, integration name or account."""
    async with core.store.session() as s:
        conns = list((await s.scalars(
            select(Connection).where(Connection.practice_id == practice_id).order_by(Connection.id))).all())
    word = ref.strip().lower().removeprefix("#")
    chosen = registry.resolve(word)
    matches = [c for c in conns if (word.isdigit() and c.id == int(word)) or c.account.lower() == word
               or (chosen is not None and c.provider == chosen.name)]
    if not matches:
        raise ConnectionError_(f"no connection is called {ref!r}; `status` lists them")
    if len(matches) > 1:
        ids = ", ".join(str(c.id) for c in matches)
        raise ConnectionError_(f"{ref!r} names connections {ids}; say which by its number")
    return await refresh_calendars(core, matches[0].id, actor=actor)


async def calendar_rows(core: Core) -> list[dict[str, Any]]:
    async with core.store.session() as s:
        rows = (await s.execute(select(Calendar, Connection).join(Connection, Connection.id == Calendar.connection_id)
                                .order_by(Calendar.id))).tuples().all()
        return [calendar_view(c, conn) for c, conn in rows]


async def set_calendar(
    core: Core, calendar_id: int, *, role: str | None = None, projection: str | None = None,
    sync_enabled: bool | None = None, practitioner: str | None = None, actor: str,
) -> dict[str, Any]:
    """Change a calendar's role, projection, sync switch or practitioner; audited."""
    if role is not None and role not in ROLES:
        raise ConnectionError_(f"role must be one of {', '.join(ROLES)}")
    if projection is not None and projection not in PROJECTIONS:
        raise ConnectionError_(f"projection must be one of {', '.join(PROJECTIONS)}")
    async with core.store.session() as s:
        cal = await s.get(Calendar, calendar_id)
        if cal is None:
            raise ConnectionError_(f"there is no calendar {calendar_id}; `clinicbot calendar list` shows them")
        conn = await s.get(Connection, cal.connection_id)
        assert conn is not None
        practice_id = conn.practice_id
    if sync_enabled is not None:  # the one sync switch, shared with chat's `sync on|off`
        await set_sync(core, practice_id, enabled=sync_enabled, calendar_ids=[calendar_id], actor=actor)
    if role is None and projection is None and practitioner is None:
        return await _calendar_row_by_id(core, calendar_id)
    async with core.store.session() as s:
        cal = await s.get(Calendar, calendar_id)
        conn = await s.get(Connection, cal.connection_id) if cal is not None else None
        if cal is None or conn is None:
            raise ConnectionError_(f"calendar {calendar_id} was removed meanwhile")
        if role == "mirror" and cal.read_only:
            raise ConnectionError_(
                f"{cal.name or 'that calendar'} is read-only; it can be a source or busy calendar, not a mirror"
            )
        practitioner_id = await _practitioner(core, conn.practice_id, practitioner)
        before = {"role": cal.role, "projection": cal.projection, "practitioner_id": cal.practitioner_id}
        if role is not None:
            cal.role = role
        if projection is not None:
            cal.projection = projection
        if practitioner_id is not None:
            if await s.get(Practitioner, practitioner_id) is None:
                raise ConnectionError_("unknown practitioner")
            cal.practitioner_id = practitioner_id
        after = {"role": cal.role, "projection": cal.projection, "practitioner_id": cal.practitioner_id}
        if role is not None and role != before["role"]:
            cal.cursor = None  # a calendar in a new role is read in full once
        try:
            await s.flush()
        except IntegrityError:
            raise ConnectionError_("that change conflicts with another calendar") from None
        await audit.record(s, actor=actor, action="calendar.set", practice_id=conn.practice_id,
                           before=before, after=after, details={"calendar_id": cal.id})
        row = calendar_view(cal, conn)
    if not cal.sync_enabled or cal.role in ("busy", "work"):  # a calendar that stopped syncing keeps no push channel
        await stop_push(core, cal.connection_id, calendar_ids=[cal.id])
    return row


async def _calendar_row_by_id(core: Core, calendar_id: int) -> dict[str, Any]:
    async with core.store.session() as s:
        cal = await s.get(Calendar, calendar_id)
        conn = await s.get(Connection, cal.connection_id) if cal is not None else None
        if cal is None or conn is None:
            raise ConnectionError_(f"calendar {calendar_id} was removed meanwhile")
        return calendar_view(cal, conn)


async def set_sync(
    core: Core,
    practice_id: int,
    *,
    enabled: bool,
    actor: str,
    practitioner_id: int | None = None,
    name: str | None = None,
    provider: str | None = None,
    calendar_ids: Collection[int] | None = None,
) -> SyncSwitched:
    """Turn sync on or off: THE rule for chat's `sync on|off` and the CLI's `calendar set --sync`.

    What changes, within one practice: the calendars in `calendar_ids` when given; otherwise the
    connections whose account is `name` or whose provider is `provider` (default: `name`) and the
    calendars called `name`, or with no name every connection. `practitioner_id` narrows all of it to
    one person's connections and calendars. One audit entry (`sync.on` / `sync.off`) names them;
    what stopped syncing has its push channels stopped once the change has committed.
    Raises NothingNamed when `name` matches nothing; changes nothing (empty result) when there is nothing.
    """
    async with core.store.session() as s:
        conns = list((await s.scalars(
            select(Connection).where(Connection.practice_id == practice_id).order_by(Connection.id))).all())
        cals = list((await s.scalars(
            select(Calendar).where(Calendar.connection_id.in_([c.id for c in conns])).order_by(Calendar.id))).all())
        if practitioner_id is not None:
            conns = [c for c in conns if c.practitioner_id == practitioner_id]
            cals = [k for k in cals if k.practitioner_id == practitioner_id or k.connection_id in {c.id for c in conns}]
        changed_conns: list[Connection] = []
        changed_cals: list[Calendar] = []
        if calendar_ids is not None:
            changed_cals = [k for k in cals if k.id in set(calendar_ids)]
            if len(changed_cals) != len(set(calendar_ids)):
                raise NothingNamed("no such calendar in this practice; `clinicbot calendar list` shows them")
        elif name is not None:
            wanted, kind = name.lower(), provider or name.lower()
            changed_conns = [c for c in conns if c.provider == kind or c.account.lower() == wanted]
            changed_cals = [k for k in cals if (k.name or "").lower() == wanted]
            if not changed_conns and not changed_cals:
                raise NothingNamed(f"no calendar or connection is called {name!r}; `status` lists them")
        else:
            changed_conns = conns
        if not changed_conns and not changed_cals:
            return SyncSwitched(enabled, (), (), ())
        for c in changed_conns:
            c.sync_enabled = enabled
        for k in changed_cals:
            k.sync_enabled = enabled
        await audit.record(
            s,
            actor=actor,
            action=f"sync.{'on' if enabled else 'off'}",
            practice_id=practice_id,
            details={"connections": [c.id for c in changed_conns], "calendars": [k.id for k in changed_cals]},
        )
        labels = tuple([f"{c.provider} {c.account}".strip() for c in changed_conns]
                       + [k.name or "calendar" for k in changed_cals])
        switched = SyncSwitched(enabled, tuple(c.id for c in changed_conns), tuple(k.id for k in changed_cals), labels)
    if not enabled:  # no more webhooks for what no longer syncs (channels are stopped at the provider)
        await stop_push_for(core, connection_ids=list(switched.connection_ids),
                            calendar_ids=list(switched.calendar_ids))
    return switched


async def remove_connection(core: Core, connection_id: int, *, actor: str) -> dict[str, Any]:
    """Stop the connection's push channels, then delete it with its calendars and links; audited.

    Copies already written to its calendars stay there; appointments it booked stay in the record.
    """
    async with core.store.session() as s:
        conn = await s.get(Connection, connection_id)
        if conn is None:
            raise ConnectionError_(f"there is no connection {connection_id}; `clinicbot connection list` shows them")
        conn.sync_enabled = False  # no sync or push set-up starts while we stop its channels
    stopped = await stop_push(core, connection_id)
    async with core.store.session() as s:
        conn = await s.get(Connection, connection_id)
        if conn is None:
            raise ConnectionError_(f"connection {connection_id} was removed meanwhile")
        gone = {"id": conn.id, "provider": conn.provider, "account": conn.account,
                "calendars": len((await s.scalars(select(Calendar.id).where(Calendar.connection_id == conn.id))).all()),
                "push_channels_stopped": stopped.stopped}
        await audit.record(s, actor=actor, action="connection.remove", practice_id=conn.practice_id,
                           details={"connection_id": conn.id, "provider": conn.provider})
        await s.delete(conn)
    return gone
