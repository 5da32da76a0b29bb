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


async def test_booking_sources_copies_graph_identities(settings: Settings) -> None:
    """0008 copies each practitioner's upn and Graph object id into external_identity, keeping the columns."""
    from sqlalchemy import text

    core = open_core(settings)
    try:
        await migrate.upgrade(core.store, "0007_calendar_read_only")
        async with core.store.engine.begin() as conn:
            pid = (await conn.execute(text("SELECT id FROM practice"))).scalar_one()
            await conn.execute(text(
                "INSERT INTO practitioner (practice_id, name, handle, timezone, upn, graph_object_id, "
                "reminder_prefs, opted_out, active, created_at) VALUES "
                "(:p, 'Dr Lee', 'dr-lee', 'UTC', 'lee@clinic.example', 'obj-1', '{}', false, true, CURRENT_TIMESTAMP),"
                "(:p, 'Dr Kim', 'dr-kim', 'UTC', NULL, NULL, '{}', false, true, CURRENT_TIMESTAMP)"), {"p": pid})
        await migrate.upgrade(core.store)
        async with core.store.engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT p.handle, e.integration, e.kind, e.external_id FROM external_identity e "
                "JOIN practitioner p ON p.id = e.practitioner_id ORDER BY e.kind"))).all()
            kept = (await conn.execute(text("SELECT upn FROM practitioner WHERE handle = 'dr-lee'"))).scalar_one()
        assert [tuple(r) for r in rows] == [("dr-lee", "graph", "object_id", "obj-1"),
                                            ("dr-lee", "graph", "upn", "lee@clinic.example")]
        assert kept == "lee@clinic.example"
    finally:
        await core.close()
