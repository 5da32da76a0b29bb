"""A practice's CRM connections as chat shows and changes them: `crm` and `crm log on|off <connection>`.

`crm_overview` lists each CRM connection (an integration with a `crm` slot: HubSpot, Salesforce)
with whether visits are logged to it, when a write last landed there, and what waits or failed
(sync.notify.crm keeps one row per visit and CRM). `set_crm_logging` turns a connection's logging
on or off (its config's `crm_log`), audited with before and after. Turned off, nothing more is
queued for it and what was pending stays as it is (turned back on, the next change of each visit
is logged; the series sweep adds the series' visits again at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from sync.integrations import registry
from sync.runtime.core import Core
from sync.services.connections import find_connection
from sync.services.errors import Invalid
from sync.store import audit
from sync.store.model import Connection, CrmEntry, Practice

__all__ = ["CrmConnection", "crm_overview", "set_crm_logging"]


@dataclass(frozen=True, slots=True)
class CrmConnection:
    """One CRM connection of a practice, as `crm` shows it."""

    connection_id: int
    provider: str
    account: str
    status: str
    logging: bool
    last_write: datetime | None
    logged: int
    pending: int
    failed: int
    last_error: str | None
    #: The practice's zone, to show `last_write` in.
    timezone: str = "UTC"


def _crm_providers() -> list[str]:
    return [i.name for i in registry.integrations() if i.crm is not None]


def _logging(conn: Connection) -> bool:
    return (conn.config or {}).get("crm_log", True) is not False


async def crm_overview(core: Core, practice_id: int) -> list[CrmConnection]:
    """Each of the practice's CRM connections with its logging switch, last write and failures."""
    providers = _crm_providers()
    if not providers:
        return []
    async with core.store.session() as s:
        conns = list((await s.scalars(select(Connection).where(
            Connection.practice_id == practice_id, Connection.provider.in_(providers),
            Connection.status != "removing").order_by(Connection.id))).all())
        if not conns:
            return []
        ids = [c.id for c in conns]
        zone = await s.scalar(select(Practice.timezone).where(Practice.id == practice_id)) or "UTC"
        counts = {(cid, st): n for cid, st, n in (await s.execute(
            select(CrmEntry.connection_id, CrmEntry.status, func.count()).where(CrmEntry.connection_id.in_(ids))
            .group_by(CrmEntry.connection_id, CrmEntry.status))).tuples()}
        # A row written at least once (done_version > 0) was last touched when its write landed or later.
        last = dict((await s.execute(
            select(CrmEntry.connection_id, func.max(CrmEntry.updated_at))
            .where(CrmEntry.connection_id.in_(ids), CrmEntry.done_version > 0)
            .group_by(CrmEntry.connection_id))).tuples().all())
        errors: dict[int, str | None] = {}
        for cid, err in (await s.execute(
                select(CrmEntry.connection_id, CrmEntry.last_error)
                .where(CrmEntry.connection_id.in_(ids), CrmEntry.status == "failed")
                .order_by(CrmEntry.updated_at, CrmEntry.id))).tuples():
            errors[cid] = err
        return [CrmConnection(
            connection_id=c.id, provider=c.provider, account=c.account, status=c.status, logging=_logging(c),
            last_write=last.get(c.id), logged=counts.get((c.id, "done"), 0),
            pending=counts.get((c.id, "pending"), 0), failed=counts.get((c.id, "failed"), 0),
            last_error=errors.get(c.id), timezone=zone) for c in conns]


async def set_crm_logging(core: Core, practice_id: int, ref: str, on: bool, *,
                          actor: str) -> tuple[CrmConnection, bool]:
    """Turn a CRM connection's visit logging on or off (audited); the connection and whether it changed.

    `ref` names the connection as `status` does (its number, account or integration). A connection
    that is not a CRM is refused."""
    conn_id = await find_connection(core, practice_id, ref)
    async with core.store.session() as s:
        conn = await s.get(Connection, conn_id)
        assert conn is not None
        if registry.get(conn.provider).crm is None:
            raise Invalid(f"connection {conn.id} ({conn.provider}) is not a CRM; `crm` lists the CRM connections")
        was = _logging(conn)
        if was != on:
            conn.config = {**(conn.config or {}), "crm_log": on}
            await audit.record(s, actor=actor, action="connection.crm_log", practice_id=practice_id,
                               before={"crm_log": was}, after={"crm_log": on},
                               details={"connection_id": conn.id, "provider": conn.provider})
    [shown] = [c for c in await crm_overview(core, practice_id) if c.connection_id == conn_id]
    return shown, was != on
