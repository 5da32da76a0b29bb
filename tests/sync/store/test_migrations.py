"""Migrations upgrade an empty database, create the default practice, and downgrade again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select

from sync.boot import open_core
from sync.runtime.settings import Settings
from sync.store import migrate
from sync.store.model import Base, Practice


async def test_upgrade_then_downgrade(settings: Settings) -> None:
    core = open_core(settings)
    try:
        state = await migrate.schema_state(core.store)
        assert state.current is None
        await migrate.upgrade(core.store)
        state = await migrate.schema_state(core.store)
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
        assert (await migrate.schema_state(core.store)).current is None
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
        await migrate.upgrade(core.store, "0008_booking_sources")
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


async def test_graph_identities_move_off_the_practitioner_and_back(settings: Settings) -> None:
    """0009 copies what was set since 0008 (changed, cleared, new), keeps admins' rows, drops the columns;
    the downgrade restores the columns from the identities; upgrading again is idempotent."""
    from sqlalchemy import text

    def identities(conn: Any) -> Any:
        return conn.execute(text(
            "SELECT p.handle, e.kind, e.external_id, e.created_by FROM external_identity e "
            "JOIN practitioner p ON p.id = e.practitioner_id ORDER BY p.handle, e.kind, e.external_id"))

    core = open_core(settings)
    try:
        await migrate.upgrade(core.store, "0007_calendar_read_only")
        async with core.store.engine.begin() as conn:
            pid = (await conn.execute(text("SELECT id FROM practice"))).scalar_one()
            await conn.execute(text(
                "INSERT INTO practitioner (practice_id, name, handle, timezone, upn, graph_object_id, "
                "reminder_prefs, opted_out, active, created_at) VALUES "
                "(:p, 'Dr Lee', 'dr-lee', 'UTC', 'lee@clinic.example', 'obj-1', '{}', false, true, CURRENT_TIMESTAMP),"
                "(:p, 'Dr Kim', 'dr-kim', 'UTC', NULL, NULL, '{}', false, true, CURRENT_TIMESTAMP),"
                "(:p, 'Dr Ray', 'dr-ray', 'UTC', 'ray@clinic.example', NULL, '{}', false, true, CURRENT_TIMESTAMP)"),
                {"p": pid})
        await migrate.upgrade(core.store, "0008_booking_sources")
        async with core.store.engine.begin() as conn:  # set since 0008 by the old column-writing code
            await conn.execute(text("UPDATE practitioner SET upn = 'ann.lee@clinic.example' WHERE handle = 'dr-lee'"))
            await conn.execute(text("UPDATE practitioner SET upn = 'kim@clinic.example', graph_object_id = 'obj-2' "
                                    "WHERE handle = 'dr-kim'"))
            await conn.execute(text("UPDATE practitioner SET upn = NULL WHERE handle = 'dr-ray'"))
            await conn.execute(text(
                "INSERT INTO external_identity (practitioner_id, integration, kind, external_id, created_by, "
                "created_at) SELECT id, 'graph', 'upn', 'dr.ray@clinic.example', 'cli:admin', CURRENT_TIMESTAMP "
                "FROM practitioner WHERE handle = 'dr-ray'"))
        await migrate.upgrade(core.store)
        expected = [("dr-kim", "object_id", "obj-2", "migration"), ("dr-kim", "upn", "kim@clinic.example", "migration"),
                    ("dr-lee", "object_id", "obj-1", "migration"),
                    ("dr-lee", "upn", "ann.lee@clinic.example", "migration"),
                    ("dr-ray", "upn", "dr.ray@clinic.example", "cli:admin")]
        async with core.store.engine.connect() as conn:
            assert [tuple(r) for r in (await identities(conn)).all()] == expected
            columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("practitioner")})
        assert not columns & {"upn", "graph_object_id"}

        await migrate.downgrade(core.store, "0008_booking_sources")
        async with core.store.engine.connect() as conn:
            restored = (await conn.execute(text(
                "SELECT handle, upn, graph_object_id FROM practitioner ORDER BY handle"))).all()
            assert [tuple(r) for r in (await identities(conn)).all()] == expected
        assert [tuple(r) for r in restored] == [("dr-kim", "kim@clinic.example", "obj-2"),
                                                ("dr-lee", "ann.lee@clinic.example", "obj-1"),
                                                ("dr-ray", "dr.ray@clinic.example", None)]
        await migrate.upgrade(core.store)  # again: nothing copied twice
        async with core.store.engine.connect() as conn:
            assert [tuple(r) for r in (await identities(conn)).all()] == expected
            if conn.dialect.name == "sqlite":  # off while the tables were copied, on again after
                assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
    finally:
        await core.close()
