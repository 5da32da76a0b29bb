"""Upgrading a populated database loses no row: the SQLite table copies of the early migrations (0002's
`batch_alter_table`) were run with foreign keys on before `_migrate_sqlite` turned them off, and a copy's
DROP of a parent table would have deleted its children through ON DELETE CASCADE."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.boot import open_core
from sync.runtime.settings import Settings
from sync.store import migrate

#: The migrations a user database upgraded through with foreign keys on (they landed before the fix).
BEFORE_THE_FIX = "0003_conflict_notices"


def _value(table: str, column: sa.Column[Any], n: int) -> Any:
    """A plausible value of the column's type for the table's `n`th row (made-up, no real data)."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return n + 1
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    if isinstance(kind, sa.Date):
        return date(2026, 3, 3)
    if isinstance(kind, sa.JSON):
        return {}
    if isinstance(kind, sa.LargeBinary):
        return b"\x00"
    if isinstance(kind, sa.Numeric):
        return 1
    length = getattr(kind, "length", None) or 40
    return f"{n}-{table[:6]}-{column.name}"[:length]


def _populate(conn: Connection) -> dict[str, int]:
    """Two rows in every table of the schema, each foreign key pointing at a parent row; the row counts."""
    meta = sa.MetaData()
    meta.reflect(conn)
    ids: dict[str, list[Any]] = {}
    for table in meta.sorted_tables:
        if table.name == "alembic_version":
            continue
        existing = [r[0] for r in conn.execute(sa.select(table.c.id))] if "id" in table.c else []
        for n in range(2):
            row: dict[str, Any] = {}
            for column in table.columns:
                parents = [fk.column.table.name for fk in column.foreign_keys]
                if column.primary_key and isinstance(column.type, sa.Integer) and not parents:
                    continue
                if parents:
                    row[column.name] = ids[parents[0]][n % len(ids[parents[0]])]
                else:
                    row[column.name] = _value(table.name, column, n)
            result = conn.execute(table.insert().values(**row))
            if "id" in table.c:
                existing.append(result.inserted_primary_key[0])
        ids[table.name] = existing
    return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in meta.sorted_tables if t.name != "alembic_version"}


def _counts(conn: Connection, tables: list[str]) -> dict[str, int]:
    return {t: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one() for t in tables}


async def test_upgrading_a_populated_database_keeps_every_row(settings: Settings) -> None:
    core = open_core(settings)
    try:
        await migrate.upgrade(core.store, "0001")
        async with core.store.engine.begin() as conn:
            before = await conn.run_sync(_populate)
        assert all(n >= 2 for n in before.values()) and {"appointment", "link", "calendar"} <= set(before)
        # As the code before the fix ran them: in one transaction, foreign keys (and their cascades) on.
        async with core.store.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                assert (await conn.execute(sa.text("PRAGMA foreign_keys"))).scalar_one() == 1
            await conn.run_sync(migrate._run, migrate.command.upgrade, BEFORE_THE_FIX)
            assert await conn.run_sync(_counts, list(before)) == before
        await migrate.upgrade(core.store)
        async with core.store.engine.connect() as conn:
            assert await conn.run_sync(_counts, list(before)) == before
            if conn.dialect.name == "sqlite":
                assert (await conn.execute(sa.text("PRAGMA foreign_key_check"))).all() == []
    finally:
        await core.close()
