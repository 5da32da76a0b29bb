"""Alembic, driven from code: upgrade, downgrade and the current revision, on either backend."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from sync.store.database import Store, StoreError

__all__ = [
    "SchemaState", "alembic_config", "current_revision", "downgrade", "head_revision", "prepare_database",
    "schema_state", "upgrade",
]

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger("clinicbot.store")


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _run(conn: Connection, fn: Any, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    fn(cfg, revision)


async def schema_state(store: Store) -> SchemaState:
    """The database's revision and this version's head; StoreError when the database is unreachable."""
    await store.ping()
    async with store.engine.connect() as conn:
        current = await conn.run_sync(current_revision)
    return SchemaState(current=current, head=head_revision())


async def _migrate(store: Store, fn: Any, revision: str) -> None:
    if store.engine.dialect.name == "sqlite":
        await _migrate_sqlite(store, fn, revision)
        return
    async with store.engine.begin() as conn:
        if store.is_postgres:
            from sqlalchemy import text

            # One migrator at a time across replicas.
            await conn.execute(text("SELECT pg_advisory_xact_lock(726354001)"))
            if store.schema:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"'))
        await conn.run_sync(_run, fn, revision)


async def upgrade(store: Store, revision: str = "head") -> None:
    await _migrate(store, command.upgrade, revision)


async def downgrade(store: Store, revision: str = "base") -> None:
    await _migrate(store, command.downgrade, revision)


async def prepare_database(store: Store, *, auto_migrate: bool) -> None:
    """Bring SQLite up to date (when allowed); refuse a PostgreSQL schema that is behind.

    Here, not in bot.app, so that admin commands (`clinicbot sync run` ...) check the schema
    without importing the web server (aiohttp: ~9 MB).
    """
    state = await schema_state(store)
    if state.up_to_date:
        return
    if store.is_sqlite and auto_migrate:
        log.info("upgrading the embedded SQLite database", extra={"from": state.current, "to": state.head})
        await upgrade(store)
        return
    where = f"is at {state.current}" if state.current else "has no clinicbot tables yet"
    raise StoreError(f"the database {where}, and this version needs {state.head}: run `clinicbot db upgrade`")


def run_sync(coro: Any) -> Any:
    return asyncio.run(coro)


async def _migrate_sqlite(store: Store, fn: Any, revision: str) -> None:
    """SQLite's batch migrations copy a table, drop it and rename the copy: with foreign keys on, the
    drop would cascade to the rows that point at it (a practitioner's identities, calendars...). So
    they are off while migrating (only possible outside a transaction), and on again after; rows left
    pointing nowhere are logged."""
    from sqlalchemy import text

    async with store.engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        await conn.commit()
        try:
            async with conn.begin():
                await conn.run_sync(_run, fn, revision)
                broken = (await conn.execute(text("PRAGMA foreign_key_check"))).all()
                if broken:
                    log.warning("rows pointing nowhere after migrating (table, rowid, parent): %s", broken[:20])
        finally:
            await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            await conn.commit()
