"""Leader election across replicas: a PostgreSQL session advisory lock on a dedicated connection.

APScheduler 3 cannot share a job store between processes, so exactly one process runs the
scheduler. It holds `pg_try_advisory_lock(key)` on a connection of its own; when the process
dies, PostgreSQL drops the connection and with it the lock, and the next process that polls
takes over. The key is derived from the schema, so test schemas in one database do not contend.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    import asyncpg

__all__ = ["LeaderLock", "lock_key"]

log = logging.getLogger("clinicbot.leader")


def lock_key(schema: str) -> int:
    """A signed 64-bit advisory-lock key for the scheduler of one schema."""
    digest = hashlib.sha256(f"clinicbot.scheduler:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def asyncpg_dsn(url: str) -> str:
    """A plain libpq-style DSN from a SQLAlchemy postgresql+asyncpg URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class LeaderLock:
    """Try to become leader; check that leadership still holds; let it go."""

    def __init__(self, url: str, schema: str = "", *, timeout: float = 5.0) -> None:
        self._dsn = asyncpg_dsn(url)
        self.key = lock_key(schema)
        self._timeout = timeout
        self._conn: asyncpg.Connection | None = None
        self.held = False
        # Only a PostgreSQL server elects a leader, and its engine has loaded the driver already: a SQLite
        # server never imports it (~35 ms of start-up).
        import asyncpg  # lazy: the PostgreSQL driver, see above

        self._connect: Any = asyncpg.connect
        self._unreachable: tuple[type[BaseException], ...] = (TimeoutError, OSError, asyncpg.PostgresError)
        self._lost: tuple[type[BaseException], ...] = (*self._unreachable, asyncpg.InterfaceError)

    async def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits for it."""
        if self.held:
            return True
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect(self._dsn, timeout=self._timeout)
            got = await self._conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", self.key, timeout=self._timeout
            )
        except self._unreachable as exc:
            log.warning("leader lock: database unreachable", extra={"error": type(exc).__name__})
            await self._drop()
            return False
        self.held = bool(got)
        return self.held

    async def healthy(self) -> bool:
        """True while the lock's connection is alive (and so the lock still ours)."""
        if not self.held or self._conn is None or self._conn.is_closed():
            self.held = False
            return False
        try:
            await self._conn.fetchval("SELECT 1", timeout=self._timeout)
        except self._lost as exc:
            log.warning("leader lock: connection lost", extra={"error": type(exc).__name__})
            await self._drop()
            return False
        return True

    async def release(self) -> None:
        """Unlock and close; safe to call when not held."""
        if self._conn is not None and not self._conn.is_closed() and self.held:
            try:
                await self._conn.fetchval("SELECT pg_advisory_unlock($1)", self.key, timeout=self._timeout)
            except self._lost:
                pass
        await self._drop()

    async def _drop(self) -> None:
        self.held = False
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), self._timeout)
            except self._lost:
                conn.terminate()
