"""Database access: async engines for SQLite (embedded default) and PostgreSQL, sessions, and the
schema check that runs at start."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

__all__ = ["ANSWER_COLUMNS", "ANSWER_TABLES", "Store", "StoreError", "after_commit", "create_engine", "utc_days"]

log = logging.getLogger("clinicbot.store")


class StoreError(Exception):
    """The database is unreachable or its schema is not current; the message says what to do."""


#: Connections a Store's pool keeps open (SQLAlchemy's default of 10 more may be opened for a burst).
POOL_SIZE = 20


def create_engine(url: str, schema: str = "", **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for `url`; `schema` pins PostgreSQL's search_path (hosting, tests)."""
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        connect_args["timeout"] = 30
        db = parsed.database
        if db and db != ":memory:":
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
    elif schema:
        connect_args["server_settings"] = {"search_path": schema}
    # SQLAlchemy's pre-ping is a round trip at every checkout, i.e. on every session (on asyncpg
    # three: BEGIN, a statement, ROLLBACK). A server drops connections that sat idle (PostgreSQL
    # restarts, idle timeouts, proxies), so a connection is pinged only when it comes out of the pool
    # after PING_AFTER_IDLE seconds there (`_ping_after_idle`); not at all for a local SQLite file.
    ping_after_idle = parsed.get_backend_name() != "sqlite" and not kwargs.get("pool_pre_ping")
    pool_size = kwargs.pop("pool_size", POOL_SIZE)
    if "poolclass" not in kwargs and parsed.database not in (None, "", ":memory:"):
        # Keep as many connections as a server uses at once (Slack's 16 + 4 workers, Teams' turns):
        # past SQLAlchemy's 5, every checkout above it opened a connection and closed it again on
        # return (a connect, PRAGMAs or a PostgreSQL login, and asyncpg's prepared statements lost).
        kwargs["pool_size"] = pool_size
    if parsed.get_backend_name() == "sqlite" and "poolclass" not in kwargs:
        # A connection back in the pool is rolled back only if a transaction is still open on it
        # (`_sqlite_reset`): after a commit the pool's unconditional rollback was one more trip to
        # aiosqlite's thread on every session.
        kwargs.setdefault("pool_reset_on_return", None)
    engine = create_async_engine(url, connect_args=connect_args, **kwargs)
    if ping_after_idle and "poolclass" not in kwargs:
        event.listen(engine.sync_engine.pool, "checkin", _idle_from)
        event.listen(engine.sync_engine.pool, "checkout", functools.partial(_ping_after_idle, engine.dialect))
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if kwargs.get("pool_reset_on_return", "rollback") is None:
            event.listen(engine.sync_engine.pool, "reset", _sqlite_reset)
    return engine


#: Seconds a connection may sit in the pool before it is pinged at its next checkout.
PING_AFTER_IDLE = 10.0
_IDLE_SINCE = "clinicbot_idle_since"


def _idle_from(_dbapi_conn: Any, record: Any) -> None:
    if record is not None:
        record.info[_IDLE_SINCE] = time.monotonic()


def _ping_after_idle(dialect: Any, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """A connection leaving the pool after PING_AFTER_IDLE seconds there is pinged first; one the
    server dropped invalidates the pool (as SQLAlchemy's pre-ping does) and a new one is connected."""
    since = record.info.get(_IDLE_SINCE)
    if since is None or time.monotonic() - since < PING_AFTER_IDLE:
        return  # new, or back in the pool only just now
    try:
        dialect.do_ping(dbapi_conn)
    except Exception as exc:
        if isinstance(exc, OSError) or dialect.is_disconnect(exc, dbapi_conn, None):
            raise InvalidatePoolError() from exc
        raise


def _sqlite_reset(dbapi_conn: Any, _record: Any, state: Any) -> None:
    """A connection returning to the pool: roll back what is still open on it, and only that.

    SQLAlchemy skips its own reset only when it has just rolled back; after a commit it rolled
    back again. SQLite knows whether a transaction is open (`in_transaction`, read without a trip
    to aiosqlite's thread); when it cannot be read, the connection is rolled back as before."""
    if not state.asyncio_safe or state.transaction_was_reset:
        return  # not on the event loop (the pool then terminates it), or rolled back already
    try:
        open_ = bool(dbapi_conn.driver_connection.in_transaction)
    except Exception:
        open_ = True
    if open_:
        dbapi_conn.rollback()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # A 1 MB page cache, not SQLite's 2 MB default: a 10,000-booking first sync peaks ~1.5 MB
    # lower for ~0.1-0.3 s more; the OS caches the database file either way.
    cur.execute("PRAGMA cache_size=-1024")
    cur.close()


#: Tables that chat answers (agendas) are built from: a committed write to one of them makes any
#: answer cached by this process stale (agendas list the day's shifts too). The audit log, the outbox and the
#: like are not among them.
ANSWER_TABLES = frozenset({"practice", "location", "practitioner", "chat_identity", "role", "appointment", "shift"})
#: Tables an answer reads some columns of: which calendars are read-only sources (an agenda's and a card's
#: Reschedule / Cancel), which work calendars an agenda shows, and whose. A write to one of them counts
#: like a write to ANSWER_TABLES when it adds or deletes a row or sets one of these columns; a sync's
#: own bookkeeping (cursors, last success or error, refreshed credentials, backfill progress) does not.
ANSWER_COLUMNS: dict[str, frozenset[str]] = {
    "calendar": frozenset({"connection_id", "practitioner_id", "name", "role", "sync_enabled", "read_only"}),
    "connection": frozenset({"practice_id", "practitioner_id", "account", "status", "sync_enabled"}),
}
_WRITE = re.compile(r'\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+(?:"?\w+"?\.)?"?(\w+)', re.I)
#: An UPDATE's SET list (up to WHERE, FROM or RETURNING), and the columns it names.
_SET = re.compile(r'"?\s+SET\s+(.*?)(?:\s+(?:WHERE|FROM|RETURNING)\s|$)', re.I | re.S)
_SET_COLUMN = re.compile(r'(?:^|,)\s*(?:"?\w+"?\.)?"?(\w+)"?\s*=')


def _answer_write(table: str, statement: str, end: int) -> bool:
    """Whether a write to `table` (matched by _WRITE up to `end`) can change a chat answer."""
    if table in ANSWER_TABLES:
        return True
    columns = ANSWER_COLUMNS.get(table)
    if columns is None:
        return False
    if statement.lstrip()[:1] not in "Uu":
        return True  # a row added or deleted
    found = _SET.match(statement, end)
    if found is None:
        return True  # not understood: counted
    return not columns.isdisjoint(c.lower() for c in _SET_COLUMN.findall(found.group(1)))


_AFTER_COMMIT = "clinicbot_after_commit"


def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, []):
        try:
            callback()
        except Exception:  # a wake-up hint must never break a commit
            log.exception("after-commit callback failed")


def _drop_after_rollback(session: Session, _previous: object) -> None:
    session.info.pop(_AFTER_COMMIT, None)


def after_commit(session: AsyncSession | Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's transaction commits (dropped on rollback).

    Only sessions made by a `Store` run these callbacks: the listeners sit on each Store's own
    session class, never on SQLAlchemy's global `Session`, so an embedder's sessions are untouched.
    """
    sync_session = session.sync_session if isinstance(session, AsyncSession) else session
    sync_session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def _session_class() -> type[Session]:
    """A Session subclass of one Store, carrying the after-commit listeners for its sessions only."""
    cls = type("StoreSession", (Session,), {})
    event.listen(cls, "after_commit", _run_after_commit)
    event.listen(cls, "after_soft_rollback", _drop_after_rollback)
    return cls


def _store_before_flush(session: Session, context: Any, instances: Any) -> None:
    store = type(session).clinicbot_store()  # type: ignore[attr-defined]
    if store is not None:
        store._before_flush(session, context, instances)


def _store_after_flush(session: Session, context: Any) -> None:
    store = type(session).clinicbot_store()  # type: ignore[attr-defined]
    if store is not None:
        store._after_flush(session, context)


class Store:
    """The engine and session factory one process uses."""

    def __init__(self, url: str, schema: str = "", **engine_kwargs: Any) -> None:
        self.url = url
        self.schema = schema
        self.engine = create_engine(url, schema, **engine_kwargs)
        session_class = _session_class()
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, sync_session_class=session_class)
        #: Bumped whenever a transaction of this process that wrote to ANSWER_TABLES commits; answer
        #: caches compare it to the value they were built at. Other processes' writes do not bump it,
        #: so such caches also bound their entries' age. It numbers those commits; the versions
        #: below are the number of the last commit that touched their scope (see `version_for`).
        self.data_version = 0
        #: Set by such a commit whose writes cannot all be put down to practices (Core UPDATEs,
        #: bulk statements, a failed flush); `practice_versions` by one whose writes can: every row
        #: it wrote was an ORM object of ANSWER_TABLES with a known practice; `day_versions` (per
        #: practice and UTC date) by one whose writes were all single appointments (not series) of
        #: known days: moving a visit from Monday to Tuesday leaves Wednesday's answers alone.
        self.unscoped_version = 0
        self.practice_versions: dict[int, int] = {}
        self.day_versions: dict[tuple[int, date], int] = {}
        #: Set by writes of people that link no practitioner anew (a first contact, a role, a new
        #: display name): answers about days (agendas) do not depend on them, other answers do.
        self.people_versions: dict[int, int] = {}
        # Connections (SQLAlchemy's, one per transaction) whose open transaction wrote to
        # ANSWER_TABLES. Kept here, not in `conn.info`: reading that can make a connection that is
        # being invalidated try to reconnect, from inside a rollback.
        self._wrote: weakref.WeakSet[Any] = weakref.WeakSet()
        self._unscoped: weakref.WeakSet[Any] = weakref.WeakSet()
        self._flushing: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
        self._scopes: weakref.WeakKeyDictionary[Any, set[int]] = weakref.WeakKeyDictionary()
        self._days: weakref.WeakKeyDictionary[Any, set[tuple[int, date]]] = weakref.WeakKeyDictionary()
        self._people: weakref.WeakKeyDictionary[Any, set[int]] = weakref.WeakKeyDictionary()
        self._watch: sqlite3.Connection | None = None
        #: The last `PRAGMA data_version` accounted for, and how many changes by other processes
        #: were seen (what external_version returns); pool connections in their own commit.
        self._seen: int | None = None
        self._others = 0
        self._committing: set[int] = set()
        #: Pool connections whose commit of answer-table writes has started (when, and the scopes
        #: it wrote), and how many such commits each scope has in flight (see `_committed`).
        self._in_flight: dict[int, tuple[float, list[tuple[Any, ...]]]] = {}
        self._flying: dict[tuple[Any, ...], int] = {}
        sync_engine = self.engine.sync_engine
        event.listen(sync_engine, "after_cursor_execute", self._note_write)
        event.listen(sync_engine, "handle_error", self._failed)
        event.listen(sync_engine, "commit", self._committed)
        if self.is_sqlite:
            event.listen(sync_engine, "commit", self._own_commit_starts)
            event.listen(sync_engine.pool, "checkin", self._own_commit_ended)
        event.listen(sync_engine.pool, "checkin", self._settled)
        event.listen(sync_engine, "rollback", self._forget)
        # The session class's listeners reach this Store through a weak reference: SQLAlchemy keeps
        # class-level listeners in a registry keyed (weakly) by the class, and a bound method there
        # would keep the Store, its engine and their caches alive for the life of the process
        # (every test's Store, in the test suite).
        session_class.clinicbot_store = weakref.ref(self)  # type: ignore[attr-defined]
        event.listen(session_class, "before_flush", _store_before_flush)
        event.listen(session_class, "after_flush", _store_after_flush)

    def _note_write(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement[:1] in "SsWw":  # SELECT / WITH: the common case, decided without the regex
            return
        match = _WRITE.match(statement)
        if match is not None and _answer_write(table := match.group(1).lower(), statement, match.end()):
            self._wrote.add(conn)
            flushing = self._flushing.get(conn)
            if flushing is None:
                self._unscoped.add(conn)  # a statement outside an ORM flush: practice unknown
            else:
                flushing.add(table)

    def _before_flush(self, session: Session, *_: Any) -> None:
        conn = session.connection()
        if self._flushing.get(conn):
            # Written since a flush that found nothing to do (it never reached after_flush):
            # statements outside a flush, so their practice is unknown.
            self._unscoped.add(conn)
        self._flushing[conn] = set()

    def _after_flush(self, session: Session, _context: Any) -> None:
        """Put the flush's writes to ANSWER_TABLES down to practices, or mark them unscoped."""
        conn = session.connection()
        written = self._flushing.pop(conn, None)
        if not written:
            return
        practices: set[int] = set()
        days: set[tuple[int, date]] = set()
        people: set[int] = set()
        covered: set[str] = set()
        new, deleted = session.new, session.deleted
        for obj in (*new, *session.dirty, *session.deleted):
            table = getattr(getattr(obj, "__table__", None), "name", None)
            if table not in ANSWER_TABLES:
                if table not in ANSWER_COLUMNS or not _answer_columns_changed(obj, table, obj in new, obj in deleted):
                    continue
            found = _practices_of(session, obj, table)
            if found is None:
                self._unscoped.add(conn)
                return
            covered.add(table)
            if table in _PEOPLE and _people_only(obj, table, obj in new, obj in deleted):
                people |= found
                continue
            dated = _days_of(obj, found, obj in new) if table == "appointment" else None
            if dated is None:
                practices |= found
            else:
                days |= dated
        if not written <= covered:  # rows written that no object accounts for (cascades ...)
            self._unscoped.add(conn)
            return
        self._scopes.setdefault(conn, set()).update(practices)
        self._days.setdefault(conn, set()).update(days)
        self._people.setdefault(conn, set()).update(people)

    def _failed(self, context: Any) -> None:
        conn = getattr(context, "connection", None)
        if conn is not None and self._flushing.pop(conn, None) is not None:
            self._unscoped.add(conn)  # a flush that failed half way: its writes are not put down

    def _settled(self, dbapi_connection: Any, _record: Any) -> None:
        """The connection is back in the pool, its commit done: its scopes move again and settle."""
        if not self._in_flight:
            return
        entry = self._in_flight.pop(id(dbapi_connection), None)
        if entry is not None:
            self._land(entry[1])

    def _land(self, targets: list[tuple[Any, ...]]) -> None:
        for target in targets:
            left = self._flying.get(target, 0) - 1
            if left > 0:
                self._flying[target] = left
            else:
                self._flying.pop(target, None)
        self._bump(targets)

    def _prune(self) -> None:
        now = time.monotonic()
        for key, (since, targets) in list(self._in_flight.items()):
            if now - since > _IN_FLIGHT_MAX:  # its connection never came back to the pool
                del self._in_flight[key]
                self._land(targets)

    def _targets(self, conn: Any) -> list[tuple[Any, ...]]:
        scopes = self._scopes.get(conn)
        if conn in self._unscoped or self._flushing.get(conn) or scopes is None:
            return [("u",)]
        return ([("p", p) for p in scopes] + [("d", p, d) for p, d in self._days.get(conn, ())]
                + [("h", p) for p in self._people.get(conn, ())])

    def _bump(self, targets: list[tuple[Any, ...]]) -> None:
        self.data_version += 1
        seq = self.data_version
        for target in targets:
            if target[0] == "u":
                self.unscoped_version = seq
            elif target[0] == "p":
                self.practice_versions[target[1]] = seq
            elif target[0] == "d":
                self.day_versions[(target[1], target[2])] = seq
            else:
                self.people_versions[target[1]] = seq

    def _committed(self, conn: Any) -> None:
        """Just before the driver commits: the scopes written move now (so nothing built before
        is used after), read as in flight until the connection is back in the pool (so nothing
        built from the old data in between is kept), and move again then."""
        if conn in self._wrote:
            targets = self._targets(conn)
            self._bump(targets)
            try:
                key = id(conn.connection.dbapi_connection)
            except Exception:
                key = None
            if key is not None:
                earlier = self._in_flight.pop(key, None)
                if earlier is not None:  # the same connection's previous commit is done by now
                    self._land(earlier[1])
                self._in_flight[key] = (time.monotonic(), targets)
                for target in targets:
                    self._flying[target] = self._flying.get(target, 0) + 1
        self._forget(conn)

    def _forget(self, conn: Any) -> None:
        self._wrote.discard(conn)
        self._unscoped.discard(conn)
        self._flushing.pop(conn, None)
        self._scopes.pop(conn, None)
        self._days.pop(conn, None)
        self._people.pop(conn, None)

    def version_for(self, practice_id: int | None, days: Iterable[date] = ()) -> tuple[int, ...]:
        """What an answer about `practice_id` depends on: it is stale once this changes.

        None (an answer not tied to one practice): every committed write to ANSWER_TABLES.
        A practice: the unscoped writes and that practice's own; with `days` (UTC dates: the answer
        shows only appointments that overlap them), only appointment writes on those days count,
        where the write's days are known (a series or an unknown old time counts for every day), and
        writes of people count only where they link a practitioner (an agenda's `@mention` reads that
        link; who asked is part of the answer's key, see bot.commands.answers.agenda_audience).
        Each number is that of the last commit (`data_version`) to touch its scope, so an answer
        built from data read after commit n is current while no number here exceeds n.
        """
        if self._flying:
            self._prune()
            wanted: list[tuple[Any, ...]] = [("u",)]
            if practice_id is not None:
                wanted.append(("p", practice_id))
                wanted += [("d", practice_id, d) for d in days] if days else [("h", practice_id)]
            if (practice_id is None and self._flying) or any(w in self._flying for w in wanted):
                return (self.data_version + 1,)  # a write to it is reaching the database: nothing is current
        if practice_id is None:
            return (self.data_version,)
        if not days:
            return (self.unscoped_version, self.practice_versions.get(practice_id, 0),
                    self.people_versions.get(practice_id, 0))
        get = self.day_versions.get
        return (self.unscoped_version, self.practice_versions.get(practice_id, 0),
                *(get((practice_id, d), 0) for d in days))

    def external_version(self) -> int | None:
        """A number that changes when another process commits to the database; None where that
        cannot be read cheaply (PostgreSQL, in-memory SQLite) or could not be now.

        SQLite keeps such a counter per connection (`PRAGMA data_version`: it changes when another
        connection commits). It is read on a plain connection of its own, held open and never
        used to write; the call takes microseconds, so it runs on the caller's thread. This
        process's own pool counts as "another connection" too, so the counter is also read just
        before and just after each of its own commits (`_own_commit_starts`, `_own_commit_ended`)
        and a change between those two reads is put down to this process: its writes are told
        apart by `version_for`, which answer caches follow anyway. Another process's commit that
        lands inside that window (a few milliseconds) is missed here; the caches' age bound
        (`watched_ttl`) still applies to it.
        """
        raw = self._raw_external()
        if raw is None:
            return None
        if raw != self._seen:
            self._seen = raw
            self._others += 1
        return self._others

    def _raw_external(self) -> int | None:
        database = self.engine.url.database if self.is_sqlite else None
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        try:
            if self._watch is None:
                self._watch = sqlite3.connect(database, timeout=0.05, isolation_level=None, check_same_thread=False)
            row = self._watch.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            self._close_watch()
            return None
        return int(row[0])

    def _own_commit_starts(self, conn: Any) -> None:
        """Before this process commits: a change seen now is another process's (see external_version)."""
        if self._watch is None:  # nobody watches yet (or not SQLite): nothing to tell apart
            return
        self.external_version()
        with contextlib.suppress(Exception):
            self._committing.add(id(conn.connection.dbapi_connection))

    def _own_commit_ended(self, dbapi_connection: Any, _record: Any) -> None:
        """The connection is back in the pool, its commit done: the change it made is this process's."""
        if self._committing and id(dbapi_connection) in self._committing:
            self._committing.discard(id(dbapi_connection))
            raw = self._raw_external()
            if raw is not None:
                self._seen = raw

    def _close_watch(self) -> None:
        if self._watch is not None:
            with contextlib.suppress(sqlite3.Error):
                self._watch.close()
            self._watch = None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on any error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (OSError, DBAPIError, OperationalError) as exc:
            raise StoreError(f"database unreachable: {type(exc).__name__}: {_short(exc)}") from exc

    async def dispose(self) -> None:
        self._close_watch()
        await self.engine.dispose()


async def hold_write_lock(session: AsyncSession) -> None:
    """SQLite: take the database's write lock now, so nothing this transaction reads from here on
    can change before it commits. PostgreSQL: nothing (lock the rows read, FOR UPDATE, instead).

    SQLite lets one connection write at a time, and only takes that lock at a transaction's first
    write (the Python driver even reads outside any transaction until then). A change that reads,
    checks, then writes (a free slot, a card's version) takes it first with BEGIN IMMEDIATE; a
    transaction that has written already holds it.
    """
    if session.bind is None or session.bind.dialect.name != "sqlite":
        return
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is not None and not driver.in_transaction:
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


def _practices_of(session: Session, obj: Any, table: str) -> set[int] | None:
    """The practices a row of ANSWER_TABLES (or ANSWER_COLUMNS) belongs to, before and after the flush;
    None if unknown."""
    column = "id" if table == "practice" else "practice_id"
    state = sa_inspect(obj)
    if table == "calendar":
        # Its practice is its connection's, when that is in the session (a calendar's connection
        # never changes); unknown otherwise.
        connection = state.dict.get("connection")
        connection_id = state.dict.get("connection_id")
        if connection is None and connection_id is not None:
            mapper = next((m for m in state.mapper.registry.mappers if m.local_table.name == "connection"), None)
            if mapper is not None:
                connection = session.identity_map.get(session.identity_key(mapper.class_, connection_id))
        practice_id = sa_inspect(connection).dict.get("practice_id") if connection is not None else None
        return {practice_id} if isinstance(practice_id, int) else None
    if column not in state.attrs:
        # A role: its practice is its chat identity's, when that is in the session (a first
        # contact adds both); a role's identity never changes.
        owner_id = getattr(obj, "chat_identity_id", None)
        mapper = next((m for m in state.mapper.registry.mappers if m.local_table.name == "chat_identity"), None)
        owner = (
            session.identity_map.get(session.identity_key(mapper.class_, owner_id))
            if mapper is not None and owner_id is not None else None
        )
        practice_id = getattr(owner, "practice_id", None)
        return {practice_id} if isinstance(practice_id, int) else None
    found: set[int] = set()
    value = getattr(obj, column, None)
    if isinstance(value, int):
        found.add(value)
    history = state.attrs[column].history
    for old in history.deleted or ():
        if isinstance(old, int):
            found.add(old)
    return found or None


#: Seconds after which a commit still "in flight" is taken as done (its connection was dropped, not returned).
_IN_FLIGHT_MAX = 5.0
_PEOPLE = frozenset({"chat_identity", "role"})


def _answer_columns_changed(obj: Any, table: str, new: bool, deleted: bool) -> bool:
    """A calendar or connection row added, deleted, or with one of its ANSWER_COLUMNS changed."""
    if new or deleted:
        return True
    attrs = sa_inspect(obj).attrs
    return any(attrs[name].history.has_changes() for name in ANSWER_COLUMNS[table] if name in attrs)


def _people_only(obj: Any, table: str, new: bool, deleted: bool) -> bool:
    """A write of a person that no agenda reads: a role, or a chat identity whose practitioner link
    is not set, changed or removed by it (a first contact, a new display name)."""
    if table == "role":
        return True
    state = sa_inspect(obj)
    link = state.dict.get("practitioner_id")
    if "practitioner_id" not in state.dict and not new:
        return False  # not loaded: what it was is not known
    if new or deleted:
        return link is None
    return not state.attrs["practitioner_id"].history.has_changes()


#: An appointment longer than this counts for every day (its days would be a long list).
_MAX_DAYS = 7


def utc_days(start: datetime, end: datetime) -> tuple[date, ...] | None:
    """The UTC dates [start, end) touches (start's alone when it is empty); None past _MAX_DAYS."""
    first = start.astimezone(UTC).date() if start.tzinfo else start.date()
    last_moment = max(start, end - timedelta(microseconds=1))
    last = last_moment.astimezone(UTC).date() if last_moment.tzinfo else last_moment.date()
    span = (last - first).days
    if span < 0 or span >= _MAX_DAYS:
        return None
    return tuple(first + timedelta(days=k) for k in range(span + 1))


def _days_of(obj: Any, practices: set[int], new: bool) -> set[tuple[int, date]] | None:
    """(practice, UTC date) pairs a single appointment's write changes, before and after; None when
    they cannot be told: a series or an override of one (its visits are elsewhere), an all-day row,
    or a time whose value (or changed time whose old value) was not loaded. Reads only what is
    loaded: nothing here may go to the database. A new row's unset column has its (empty) default."""
    state = sa_inspect(obj)
    loaded, attrs = state.dict, state.attrs
    for name in ("rrule", "recurrence_key", "all_day"):
        if (name not in loaded and not new) or loaded.get(name) or any(attrs[name].history.deleted or ()):
            return None
    start, end = loaded.get("start"), loaded.get("end")
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return None
    times = [(start, end)]
    if not new:
        was: list[datetime] = []
        for name, now in (("start", start), ("end", end)):
            history = attrs[name].history
            if history.added and not history.deleted:
                return None  # changed, but what it was is not known
            old = history.deleted[0] if history.deleted else now
            if not isinstance(old, datetime):
                return None
            was.append(old)
        times.append((was[0], was[1]))
    found: set[tuple[int, date]] = set()
    for s, e in times:
        dates = utc_days(s, e)
        if dates is None:
            return None
        found.update((p, d) for p in practices for d in dates)
    return found


def _short(exc: BaseException) -> str:
    msg = str(getattr(exc, "orig", exc) or exc).splitlines()
    return msg[0][:200] if msg else ""
