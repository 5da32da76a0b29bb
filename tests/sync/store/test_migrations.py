"""Migrations upgrade an empty database, create the default practice, and downgrade again."""

from __future__ import annotations

from sqlalchemy import inspect, select

from sync.boot import open_core
from sync.runtime.settings import Settings
from sync.store import migrate
from sync.store.model import Base, Practice


async def test_upgrade_then_downgrade(settings: Settings) -> None:
    core = open_core(settings)
    try:
        state = await core.store.schema_state()
        assert state.current is None
        await migrate.upgrade(core.store)
        state = await core.store.schema_state()
        assert state.up_to_date
        async with core.store.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert set(Base.metadata.tables) <= tables
        async with core.store.session() as s:
            names = [p.name for p in (await s.scalars(select(Practice))).all()]
        assert names == ["default"]
        await migrate.downgrade(core.store, "base")
        async with core.store.engine.connect() as conn:
            left = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert not (set(Base.metadata.tables) & left)
        assert (await core.store.schema_state()).current is None
    finally:
        await core.close()


async def test_models_match_migrations(settings: Settings) -> None:
    """Autogenerate finds nothing to add: the model and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    core = open_core(settings)
    try:
        await migrate.upgrade(core.store)
        async with core.store.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": False}), Base.metadata)
            )
        assert diff == []
    finally:
        await core.close()
