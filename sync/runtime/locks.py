"""Per-connection locks: two sync runs of one connection never overlap, across processes too.

- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) held on a dedicated database
  connection for the length of the run; a crashed process's lock goes with its connection.
- SQLite: an in-process asyncio lock plus an exclusive `flock` on a lock file beside the
  database, so two processes sharing one SQLite file take turns; the OS drops it on a crash.

`credentials_lock` is the same kind of lock in its own namespace, held only while a connection's
tokens are refreshed: a platform whose refresh tokens are single-use (Calendly) must never have two
refreshes of one connection in flight, whichever process or provider object starts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from sync.runtime.core import Core

__all__ = ["CREDENTIALS_WAIT", "SyncBusy", "connection_lock", "credentials_lock"]

_POLL = 0.1
#: How long a token refresh waits for another refresh of the same connection (a token call is short).
CREDENTIALS_WAIT = 60.0


class SyncBusy(Exception):
    """Another sync of this connection is running; try again when it has finished."""

    def __init__(self, connection_id: int) -> None:
        super().__init__(f"connection {connection_id} is already syncing; try again when it has finished")
        self.connection_id = connection_id


def _namespace(core: Core, kind: str = "sync") -> int:
    return zlib.crc32(f"clinicbot-{kind}:{core.store.schema}".encode()) & 0x7FFFFFFF


@contextlib.asynccontextmanager
async def connection_lock(core: Core, connection_id: int, *, wait: float = 0.0) -> AsyncIterator[None]:
    """Hold the sync lock of one connection; raise SyncBusy if it is not free within `wait` s."""
    deadline = time.monotonic() + wait
    if core.store.is_postgres:
        async with _pg_lock(core, connection_id, deadline):
            yield
        return
    local = core.services.sync_locks.setdefault(connection_id, asyncio.Lock())
    if not wait and local.locked():
        raise SyncBusy(connection_id)
    try:
        await asyncio.wait_for(local.acquire(), timeout=wait or None)
    except TimeoutError:
        raise SyncBusy(connection_id) from None
    try:
        async with _file_lock(core, connection_id, deadline):
            yield
    finally:
        local.release()


@contextlib.asynccontextmanager
async def credentials_lock(core: Core, connection_id: int, *, wait: float = CREDENTIALS_WAIT) -> AsyncIterator[None]:
    """Hold the token-refresh lock of one connection (waiting up to `wait` s; SyncBusy after that)."""
    deadline = time.monotonic() + wait
    if core.store.is_postgres:
        async with _pg_lock(core, connection_id, deadline, kind="credentials"):
            yield
        return
    local = core.services.credential_locks.setdefault(connection_id, asyncio.Lock())
    try:
        await asyncio.wait_for(local.acquire(), timeout=wait)
    except TimeoutError:
        raise SyncBusy(connection_id) from None
    try:
        async with _file_lock(core, connection_id, deadline, kind="credentials"):
            yield
    finally:
        local.release()


@contextlib.asynccontextmanager
async def _pg_lock(core: Core, connection_id: int, deadline: float, kind: str = "sync") -> AsyncIterator[None]:
    keys = {"ns": _namespace(core, kind), "id": connection_id}
    async with core.store.engine.connect() as conn:
        while True:
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:ns, :id)"), keys)).scalar()
            await conn.commit()
            if got:
                break
            if time.monotonic() >= deadline:
                raise SyncBusy(connection_id)
            await asyncio.sleep(_POLL)
        try:
            yield
        finally:
            try:
                await conn.execute(text("SELECT pg_advisory_unlock(:ns, :id)"), keys)
                await conn.commit()
            except BaseException:
                await conn.invalidate()  # never hand a connection still holding the lock back to the pool
                raise


def _lock_path(core: Core, connection_id: int, kind: str = "sync") -> Path | None:
    db = make_url(core.store.url).database
    if not db or db == ":memory:":
        return None
    return Path(db).expanduser().with_name(f"{Path(db).name}.{kind}-{connection_id}.lock")


@contextlib.asynccontextmanager
async def _file_lock(core: Core, connection_id: int, deadline: float, kind: str = "sync") -> AsyncIterator[None]:
    path = _lock_path(core, connection_id, kind)
    if path is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SyncBusy(connection_id) from None
                await asyncio.sleep(_POLL)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
