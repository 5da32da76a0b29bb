"""Bulk INSERTs that store exactly what SQLAlchemy's column types would, without its per-row work.

`insert(table)` with a list of dicts costs, per row and per value, SQLAlchemy's parameter
construction and each column type's bind processor: for a 10,000-event first sync (30,000 rows
over three tables) that was most of the sync's CPU once the server had answered (issue 23). Here
the values are converted column by column, in bulk, and handed to the driver's executemany as
plain tuples:

- encrypted columns (`EncryptedText`) are sealed by `SecretBox.encrypt_many` (one `os.urandom`
  for all the nonces, the same ``v1:<key id>:...`` form);
- every other column goes through its type's own bind processor (the one SQLAlchemy would run, so
  the stored form is the same), memoized per distinct value where equal values are stored alike
  (strings, ints, times keyed with their fold, flat JSON documents keyed with their order and
  their values' types): a page's rows share `now`, `[]` and some audit details. A column whose
  first values rarely repeat (ids, uids, hashes, mostly distinct start times) is converted value
  by value after them: there the memo's keys cost more than they save;
- the SQL is the statement SQLAlchemy compiles for the dialect (PostgreSQL's casts included),
  compiled once per table, column set and dialect.

Scalar column defaults the caller leaves out are filled in as SQLAlchemy would; a column with a
callable default (a timestamp, a fresh list) must be given. tests/sync/store/test_bulk.py reads
rows written both ways back and compares what is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import JSON

from sync.store.crypto import EncryptedText, current_box

__all__ = ["insert_many"]

_Statement = tuple[str, tuple[str, ...], tuple[Any, ...]]
_statements: dict[tuple[int, tuple[str, ...], str, str], _Statement] = {}


def _statement(table: Table, given: tuple[str, ...], dialect: Dialect) -> _Statement:
    """(SQL, the columns in its parameter order, the scalar default of each column not given)."""
    key = (id(table), given, dialect.name, dialect.driver)
    found = _statements.get(key)
    if found is not None:
        return found
    compiled = insert(table).compile(dialect=dialect, column_keys=list(given), for_executemany=True)
    order = tuple(compiled.positiontup or ())
    defaults: list[Any] = []
    for name in order:
        if name in given:
            defaults.append(None)
            continue
        default = table.c[name].default
        if default is None or not default.is_scalar:
            raise ValueError(f"insert_many({table.name}): column {name!r} has a computed default; give its value")
        defaults.append(default.arg)  # type: ignore[attr-defined]
    found = _statements[key] = (compiled.string, order, tuple(defaults))
    return found


def _stored(column: Column[Any], dialect: Dialect, values: list[Any]) -> list[Any]:
    """`values` of one column as the driver receives them (what SQLAlchemy would bind)."""
    kind = column.type
    if isinstance(kind, EncryptedText):
        box = current_box()
        sealed = box.encrypt_many([None if v is None else v.encode() for v in values])
        return sealed
    process: Callable[[Any], Any] | None = kind._cached_bind_processor(dialect)
    if process is None:
        return values
    key: Callable[[Any], Hashable] = _document_key if isinstance(kind, JSON) else _value_key
    memo: dict[Hashable, Any] = {}
    out = []
    hits = 0
    for v in values[:_PROBE]:
        k = key(v)
        if k is None:
            stored = process(v)
        elif k in memo:
            stored = memo[k]
            hits += 1
        else:
            stored = memo[k] = process(v)
        out.append(stored)
    if len(values) <= _PROBE:
        return out
    if hits * 8 < _PROBE:
        # Nearly every value differs (ids, uids, etags, hashes, start times, audit details): the
        # memo's keys would cost more than they save, so the rest is converted value by value.
        out.extend(map(process, values[_PROBE:]))
        return out
    for v in values[_PROBE:]:
        k = key(v)
        if k is None:
            stored = process(v)
        else:
            try:
                stored = memo[k]
            except KeyError:
                stored = memo[k] = process(v)
        out.append(stored)
    return out


#: Values of a column converted with the memo before deciding whether it pays for the rest.
_PROBE = 64


def _value_key(value: Any) -> Hashable:
    """A memo key under which equal values are stored alike: with the type (True and 1 are equal)
    and a time's fold (01:30 before and after a clock change compare equal in their zone); None
    for any other kind of value (floats: -0.0 == 0.0), which is converted on its own."""
    if isinstance(value, datetime):
        return (type(value), value, value.fold)
    return (type(value), value) if value is None or isinstance(value, _SCALARS) else None


def _document_key(value: Any) -> Hashable:
    """A memo key for a JSON document that is flat (a dict or list of scalars, or a scalar), with
    its order and its values' types, so equal keys serialize alike; None for anything deeper."""
    if isinstance(value, dict):
        items = tuple((type(k), k, type(v), v) for k, v in value.items())
        return (dict, items) if all(v is None or isinstance(v, _SCALARS) for *_, v in items) else None
    if isinstance(value, list):
        if all(v is None or isinstance(v, _SCALARS) for v in value):
            return (list, tuple((type(v), v) for v in value))
        return None
    return (type(value), value) if value is None or isinstance(value, _SCALARS) else None


_SCALARS = (str, int, bool)  # not float: -0.0 == 0.0, and they serialize apart


async def insert_many(
    session: AsyncSession, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """INSERT `rows` (tuples of `columns`' values, in that order) into `table` with one executemany,
    in the session's transaction, storing what `session.execute(insert(table), dicts)` would."""
    if not rows:
        return
    conn = await session.connection()
    dialect = conn.dialect
    given = tuple(columns)
    sql, order, defaults = _statement(table, given, dialect)
    position = {name: i for i, name in enumerate(given)}
    stored: list[list[Any] | tuple[Any, ...]] = []
    for name, default in zip(order, defaults, strict=True):
        i = position.get(name)
        values = [default] * len(rows) if i is None else [r[i] for r in rows]
        stored.append(_stored(table.c[name], dialect, values))
    await conn.exec_driver_sql(sql, list(zip(*stored, strict=True)))
