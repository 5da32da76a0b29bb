"""Shared fixtures: a migrated database on SQLite, and on PostgreSQL when
CLINICBOT_TEST_POSTGRES_URL is set (each test gets its own schema, dropped afterwards).

Under CI=true PostgreSQL is mandatory: the session fails at start if it is unset or unreachable.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web_app as aiohttp_web_app

from sync.boot import open_core
from sync.runtime.core import Core
from sync.runtime.settings import Settings, load_settings
from sync.store.crypto import new_key
from tests.loop_guard import install, pytest_runtest_teardown  # noqa: F401 (a hook)

# A test whose loop closes with a task that ignores its cancellation, or a database connection
# still open, fails (see tests/loop_guard.py).
install()

PG_URL_ENV = "CLINICBOT_TEST_POSTGRES_URL"
#: One key for the whole test session, so encrypted columns work in every test.
TEST_KEY = new_key()


def _pg_url() -> str | None:
    url = os.environ.get(PG_URL_ENV)
    if not url:
        return None
    return load_settings(database_url=url).database_url


async def _pg_reachable(url: str) -> str | None:
    from sync.store.database import Store, StoreError

    store = Store(url)
    try:
        await store.ping()
        return None
    except StoreError as exc:
        return str(exc)
    finally:
        await store.dispose()


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    url = _pg_url()
    if url is None:
        pytest.exit(f"CI=true but {PG_URL_ENV} is not set: the PostgreSQL suite must run in CI", returncode=3)
    problem = asyncio.run(_pg_reachable(url))
    if problem:
        pytest.exit(f"CI=true but PostgreSQL at {PG_URL_ENV} is unreachable: {problem}", returncode=3)


def pytest_report_header(config: pytest.Config) -> str:
    url = _pg_url()
    if url:
        return f"PostgreSQL tests: on ({url.split('@')[-1]})"
    return f"PostgreSQL tests: skipped ({PG_URL_ENV} is not set)"


@pytest.fixture(autouse=True)
def _forget_aiohttp_apps() -> Iterator[None]:
    """aiohttp caches each (handler, apps) middleware chain in a module-level LRU of 1,024 entries, so
    every test's web.Application (and the Core, Store and engine it holds) outlived the test: the
    suite's process grew to about 1 GB. A server has one app; tests make hundreds."""
    yield
    cached = getattr(aiohttp_web_app, "_cached_build_middleware", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and _pg_url() is None:
        pytest.skip(f"PostgreSQL tests skipped: set {PG_URL_ENV} (CI sets it) to run them")
    return str(request.param)


def make_settings(backend: str, tmp_path: Path, **overrides: object) -> Settings:
    """Settings for a fresh, empty database on `backend` inside `tmp_path`."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'clinicbot.sqlite3'}"
        schema = ""
    else:
        url = _pg_url() or ""
        schema = "t_" + uuid.uuid4().hex[:16]
    values: dict[str, object] = {
        "database_url": url,
        "database_schema": schema,
        "secret_key": TEST_KEY,
        "secret_key_file": tmp_path / "clinicbot.key",
    }
    values.update(overrides)
    return settings_with(**values)


def settings_with(**values: object) -> Settings:
    """Settings without a .env file, where each value that belongs to an integration's settings
    class (graph_url, google_client_id...) goes to that integration's section too, as the
    environment variable it stands for would."""
    from sync.integrations import registry

    sections = []
    core = {k: v for k, v in values.items() if k in Settings.model_fields or k.startswith("_")}
    for integration in registry.integrations():
        cls = integration.settings
        if cls is None or any(type(s) is cls for s in sections):
            continue
        own = {k: v for k, v in values.items() if k in cls.model_fields}
        if own:
            sections.append(cls(_env_file=None, **own))  # type: ignore[call-arg]
    return Settings(_env_file=None, **core).with_sections(*sections)  # type: ignore[arg-type, call-arg]


async def drop_schema(settings: Settings) -> None:
    if not settings.database_schema:
        return
    from sqlalchemy import text

    from sync.store.database import Store

    store = Store(settings.database_url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.database_schema}" CASCADE'))
    finally:
        await store.dispose()


@pytest.fixture
async def settings(backend: str, tmp_path: Path) -> AsyncIterator[Settings]:
    s = make_settings(backend, tmp_path)
    yield s
    await drop_schema(s)


@pytest.fixture
async def core(settings: Settings) -> AsyncIterator[Core]:
    """A Core on a freshly migrated database."""
    from sync.store.migrate import upgrade

    c = open_core(settings)
    await upgrade(c.store)
    try:
        yield c
    finally:
        await c.close()
