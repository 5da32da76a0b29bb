"""Connection and calendar administration: add an account (with discovery), list, set roles."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping
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
from sync.integrations.app_webhooks import account_entries
from sync.integrations.connect import SavedConnection, calendar_view, refresh_calendars, save_connection
from sync.integrations.push import stop_push, stop_push_for
from sync.runtime.core import Core
from sync.services.errors import Invalid
from sync.services.practices import find_practitioner, the_practice
from sync.services.staff import identities_of, set_identities
from sync.store import audit
from sync.store.model import Calendar, Connection, ConsentGrant, Link, Practitioner

__all__ = [
    "ROLES",
    "ConnectionError_",
    "IdentityMapping",
    "NothingNamed",
    "SyncSwitched",
    "add_connection",
    "add_practice_wide",
    "calendar_rows",
    "checked_options",
    "find_connection",
    "map_identities",
    "refresh_connection",
    "set_calendar",
    "set_sync",
]

ROLES = CONTRACT_ROLES
#: A webhook path token's random bytes: 256 bits, far past guessing (issue 15 asks for at least 128).
PATH_TOKEN_BYTES = 32


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
    #: The webhook address with its secret path token, for an integration with unsigned webhooks: shown
    #: once, here; only its encrypted copy is kept.
    webhook_url: str | None = None


async def _practitioner(core: Core, practice_id: int, ref: str | None) -> int | None:
    if ref is None:
        return None

    async with core.store.session() as s:
        pr = await find_practitioner(s, practice_id, ref)
    if pr is None:
        raise ConnectionError_(f"there is no practitioner {ref!r}; `clinicbot practitioner list` shows them")
    return pr.id


async def add_connection(
    core: Core, provider: str, url: str, *, username: str | None = None, password: str | None = None,
    practitioner: str | None = None, practice: str | None = None, options: Mapping[str, str] | None = None,
    secrets_given: Mapping[str, str] | None = None, actor: str,
) -> AddedConnection:
    """Discover the account's calendars and store the connection with them (nothing is written remotely).

    New calendars get the integration's default roles (CalDAV's start as `busy`, so nothing is
    written to a calendar before an admin gives it the mirror or source role; a feed is a `source`)
    and the read-only flag its adapter reported. `practice` names the practice; without it the only
    one is used, and several are refused (PracticeError).
    """
    try:
        # The parser the adapters' HTTP client uses: what it refuses must be refused here, with
        # a message, not raised from deep inside discovery.
        host = httpx.URL(url).host or urlsplit(url).hostname or url
    except (httpx.InvalidURL, ValueError) as exc:
        raise ConnectionError_(f"refused: {url[:200]!r} is not a valid URL ({str(exc)[:120]})") from None
    async with core.store.session() as s:
        chosen = await the_practice(s, practice)
    practitioner_id = await _practitioner(core, chosen.id, practitioner)
    credentials: dict[str, Any] | None = {"username": username, "password": password} if username or password \
        else None
    if secrets_given:
        credentials = {**(credentials or {}), **checked_secrets(provider, secrets_given)}
    config = {"url": url, **checked_options(provider, options or {})}
    info = ConnectionInfo(provider=provider, account=f"{username}@{host}" if username else host,
                          config=config, credentials=credentials,
                          transport=core.services.http_transport)
    try:
        integration = registry.get(provider)
        found = await registry.calendar_slot(provider).discover(info, core.settings)
        # How its app-wide deliveries name it (a Nylas grant given by its email: the grant's id).
        config.update(await account_entries(core, provider, info))
    except ProviderError as exc:
        raise ConnectionError_(f"{exc.user_message} ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not found:
        raise ConnectionError_("the account has no calendars")
    token = secrets.token_urlsafe(PATH_TOKEN_BYTES) if integration.path_token else None
    if token is not None:
        credentials = {**(credentials or {}), "webhook_token": token}
    saved = await save_connection(
        core, integration, Connected(info.account, config, credentials, found),
        practice_id=chosen.id, practitioner_id=practitioner_id, actor=actor,
    )
    hook = f"{core.settings.base_url().rstrip('/')}/webhooks/{provider}/{saved.connection_id}/{token}" \
        if token else None
    return AddedConnection(saved.connection_id, saved.calendars, webhook_url=hook)


def checked_options(provider: str, options: Mapping[str, str]) -> dict[str, str]:
    """The connect options given, each one the integration declares and with an allowed value."""
    try:
        declared = {o.name: o for o in registry.get(provider).connect.options}
    except ProviderError as exc:
        raise ConnectionError_(str(exc)) from None
    checked: dict[str, str] = {}
    for name, value in options.items():
        option = declared.get(name)
        if option is None:
            raise ConnectionError_(f"{provider} has no option {name.replace('_', '-')}")
        if option.choices and value not in option.choices:
            raise ConnectionError_(f"{name.replace('_', '-')} must be one of {', '.join(option.choices)}")
        checked[name] = value
    return checked


def checked_secrets(provider: str, given: Mapping[str, str]) -> dict[str, str]:
    """The further secrets given (`--secret-env`), each one the integration declares, none empty."""
    try:
        declared = registry.get(provider).connect.secret_fields
    except ProviderError as exc:
        raise ConnectionError_(str(exc)) from None
    for name, value in given.items():
        if name not in declared:
            names = ", ".join(declared) if declared else "none"
            raise ConnectionError_(f"{provider} takes no secret {name!r} (it takes: {names})")
        if not value:
            raise ConnectionError_(f"the secret {name!r} is empty")
    return dict(given)


async def add_practice_wide(
    core: Core, integration_name: str, practice_name: str | None, tenant: str, *, actor: str
) -> SavedConnection:
    """The practice-wide connection of a tenant-consent integration, with the calendars of its mapped staff.

    Refused until an admin granted consent for that tenant (the Teams `consent` flow records it).
    """
    integration = registry.get(integration_name)
    flow = integration.connect.tenant
    if flow is None:
        raise ConnectionError_(f"{integration.title} has no practice-wide connection")
    wanted = tenant.strip().lower()
    async with core.store.session() as s:
        practice = await the_practice(s, practice_name)
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
    saved = await refresh_calendars(core, await find_connection(core, practice_id, ref), actor=actor)
    if any(c["role"] == "mirror" for c in saved.calendars[len(saved.calendars) - saved.added:]):
        _sync_soon(core, [saved.connection_id])  # a new mirror: its existing appointments are copied now
    return saved


async def find_connection(core: Core, practice_id: int, ref: str) -> int:
    """The id of the practice's connection named by its id, integration name or account (as `status` shows)."""
    async with core.store.session() as s:
        conns = list((await s.scalars(
            select(Connection).where(Connection.practice_id == practice_id).order_by(Connection.id))).all())
    word = ref.strip().lower().removeprefix("#")
    chosen = registry.resolve(word)
    # ASCII digits only, and bounded: isdigit() also takes "²", and int() refuses both it and 5,000 digits.
    number = int(word) if word.isascii() and word.isdigit() and len(word) <= 18 else None
    matches = [c for c in conns if (number is not None and c.id == number) or c.account.lower() == word
               or (chosen is not None and c.provider == chosen.name)]
    if not matches:
        raise ConnectionError_(f"no connection is called {ref!r}; `status` lists them")
    if len(matches) > 1:
        ids = ", ".join(str(c.id) for c in matches)
        raise ConnectionError_(f"{ref!r} names connections {ids}; say which by its number")
    return matches[0].id


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
        if cal.role == "mirror" and after != before:
            # Its copies are new, for someone else, or shown differently: every appointment in the
            # window is (re)copied by its next sync (sync.engine.backfill).
            cal.ask_backfill(core.clock())
        try:
            await s.flush()
        except IntegrityError:
            raise ConnectionError_("that change conflicts with another calendar") from None
        await audit.record(s, actor=actor, action="calendar.set", practice_id=conn.practice_id,
                           before=before, after=after, details={"calendar_id": cal.id})
        row = calendar_view(cal, conn)
        # A work calendar keeps its push channel while it has tracked events (sync.services.tracked_events).
        tracking = cal.role == "work" and await s.scalar(select(Link.id).where(Link.calendar_id == cal.id)
                                                         .limit(1)) is not None
    if not cal.sync_enabled or cal.role == "busy" or (cal.role == "work" and not tracking):
        await stop_push(core, cal.connection_id, calendar_ids=[cal.id])  # a calendar that stopped syncing
    if cal.backfill_state == "pending":
        _sync_soon(core, [cal.connection_id])
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
        all_conns = list(conns)
        conn_on = {c.id: c.sync_enabled for c in all_conns}
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
        was_on = {k.id: k.sync_enabled and conn_on[k.connection_id] for k in cals}
        for c in changed_conns:
            c.sync_enabled = enabled
        for k in changed_cals:
            k.sync_enabled = enabled
        backfilling: set[int] = set()
        if enabled:  # a mirror that syncs again gets what it missed meanwhile (sync.engine.backfill)
            on_conns = {c.id: c.sync_enabled for c in all_conns}
            for k in cals:
                if k.role == "mirror" and not was_on[k.id] and k.sync_enabled and on_conns[k.connection_id]:
                    k.ask_backfill(core.clock())
                    backfilling.add(k.connection_id)
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
    _sync_soon(core, backfilling)
    return switched


def _sync_soon(core: Core, connection_ids: Collection[int]) -> None:
    """Inside the server, start the backfill of a mirror now rather than at the next poll; elsewhere
    (the CLI) the server's poll or `clinicbot sync run` does it."""
    queue = core.services.sync_queue
    if queue is None:
        return
    for connection_id in sorted(connection_ids):
        queue.request(connection_id, reason="mirror backfill")
