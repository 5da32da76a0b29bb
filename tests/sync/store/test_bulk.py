"""sync.store.bulk.insert_many stores exactly what SQLAlchemy's insert(table) with dicts stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Table, insert

from sync.runtime.core import Core
from sync.store.bulk import insert_many
from sync.store.crypto import current_box
from sync.store.model import Appointment, AuditEntry, Calendar, Connection, Link, Practice

BERLIN = timezone(timedelta(hours=1))
ENCRYPTED = {"title", "client_name", "client_email", "client_phone", "notes", "location_text"}


def _appointments(practice_id: int, calendar_id: int, tag: str) -> list[dict[str, Any]]:
    now = datetime(2026, 3, 1, 9, 30, 0, 0, tzinfo=UTC)
    return [
        {
            "practice_id": practice_id,
            "practitioner_id": None,
            "location_id": None,
            "source_calendar_id": calendar_id,
            "source_uid": f"{tag}-a",
            "recurrence_key": "",
            "title": "Physio: Client Ä",
            "client_name": "Zoë",
            "client_email": None,
            "client_phone": "+49 30 1234",
            "notes": "line\nbreak",
            "service": "Physio",
            "location_text": None,
            "start": datetime(2026, 3, 2, 8, 0, tzinfo=BERLIN),
            "end": datetime(2026, 3, 2, 8, 30, 0, 123456, tzinfo=BERLIN),
            "tzid": "Europe/Berlin",
            "all_day": False,
            "rrule": None,
            "exdates": [],
            "rdates": [],
            "status": "confirmed",
            "transparent": False,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        },
        {
            "practice_id": practice_id,
            "practitioner_id": None,
            "location_id": None,
            "source_calendar_id": calendar_id,
            "source_uid": f"{tag}-b",
            "recurrence_key": "2026-03-04",
            "title": None,
            "client_name": None,
            "client_email": "x@example.org",
            "client_phone": None,
            "notes": None,
            "service": None,
            "location_text": "Room 1",
            "start": datetime(2026, 3, 4, tzinfo=UTC),
            "end": datetime(2026, 3, 5, tzinfo=UTC),
            "tzid": None,
            "all_day": True,
            "rrule": "FREQ=WEEKLY;COUNT=3",
            "exdates": ["2026-03-11T00:00:00+00:00"],
            "rdates": ["2026-03-30"],
            "status": "tentative",
            "transparent": True,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        },
    ]


_RAW = {
    "appointment": "SELECT * FROM appointment ORDER BY id",
    "link": "SELECT * FROM link ORDER BY id",
    "audit_entry": "SELECT * FROM audit_entry ORDER BY seq",
}


async def _raw(core: Core, table: str) -> list[dict[str, Any]]:
    """The rows as the driver reads them (no column type in between)."""
    async with core.store.session() as s:
        conn = await s.connection()
        result = await conn.exec_driver_sql(_RAW[table])
        return [dict(r._mapping) for r in result]


async def _setup(core: Core) -> tuple[int, int]:
    async with core.store.session() as s:
        p = Practice(name="P", timezone="Europe/Berlin", settings={})
        s.add(p)
        await s.flush()
        c = Connection(practice_id=p.id, provider="caldav", account="a", config={}, credentials={})
        s.add(c)
        await s.flush()
        cal = Calendar(connection_id=c.id, remote_id="r", name="n", role="source")
        s.add(cal)
        await s.flush()
        return p.id, cal.id


def _same_sealed(a: str | None, b: str | None) -> None:
    assert (a is None) == (b is None)
    if a is None or b is None:
        return
    assert a != b  # fresh nonces
    assert a.split(":")[:2] == b.split(":")[:2] and len(a) == len(b)
    assert current_box().decrypt(a) == current_box().decrypt(b)


async def test_appointments_and_links_are_stored_as_insert_with_dicts_stores_them(core: Core) -> None:
    practice_id, calendar_id = await _setup(core)
    table = cast(Table, Appointment.__table__)
    old, new = _appointments(practice_id, calendar_id, "old"), _appointments(practice_id, calendar_id, "new")
    columns = list(new[0])
    async with core.store.session() as s:
        await s.execute(insert(table), old)
        await insert_many(s, table, columns, [tuple(r[c] for c in columns) for r in new])
    rows = await _raw(core, "appointment")
    assert len(rows) == 4
    for before, after in zip(rows[:2], rows[2:], strict=True):
        assert before["kind"] == after["kind"] == "appointment"  # the scalar default, filled in
        for column in before:
            if column in ENCRYPTED:
                _same_sealed(before[column], after[column])
            elif column not in ("id", "source_uid"):
                assert before[column] == after[column], column
                assert type(before[column]) is type(after[column]), column

    ids = [r["id"] for r in rows]
    now = datetime(2026, 3, 1, 9, 30, tzinfo=BERLIN)
    link_rows = [
        {
            "appointment_id": ids[i],
            "calendar_id": calendar_id,
            "remote_id": f"r{i}.ics",
            "etag": None if i % 2 else '"e1"',
            "content_hash": "h" * 64,
            "state": "ok",
            "last_synced_at": now,
        }
        for i in range(4)
    ]
    link_columns = list(link_rows[0])
    async with core.store.session() as s:
        await s.execute(insert(cast(Table, Link.__table__)), link_rows[:2])
        await insert_many(
            s, cast(Table, Link.__table__), link_columns, [tuple(r[c] for c in link_columns) for r in link_rows[2:]]
        )
    links = await _raw(core, "link")
    for before, after in zip(links[:2], links[2:], strict=True):
        for column in ("calendar_id", "etag", "content_hash", "state", "last_synced_at"):
            assert before[column] == after[column], column
            assert type(before[column]) is type(after[column]), column


async def test_audit_rows_are_stored_as_insert_with_dicts_stores_them(core: Core) -> None:
    table = cast(Table, AuditEntry.__table__)
    at = datetime(2026, 3, 1, 9, 30, 0, 5, tzinfo=UTC)
    base = [
        {
            "at": at,
            "actor": "system:sync",
            "action": "appointment.created",
            "practice_id": 1,
            "appointment_id": 7,
            "before": None,
            "after": {"start": "2026-03-02T07:00:00+00:00", "service": None},
            "details": {"calendar_id": 3},
            "prev_hash": "0" * 64,
            "hash": "1" * 64,
        },
        {
            "at": at,
            "actor": "cli:x",
            "action": "test",
            "practice_id": None,
            "appointment_id": None,
            "before": {"a": [1, "ü"]},
            "after": None,
            "details": None,
            "prev_hash": "1" * 64,
            "hash": "2" * 64,
        },
    ]
    # Values equal across types (or signs) must not share a memoized stored form.
    for n, details in enumerate(
        [
            {"flag": True},
            {"flag": 1},
            {True: "k"},
            {1: "k"},
            {"v": 0.0},
            {"v": -0.0},
            {"v": [1]},
            {"v": [True]},
            [1, True],
            [True, 1],
        ]
    ):
        base.append(
            {**base[0], "details": details, "at": at + timedelta(minutes=n % 2), "after": {"n": n}, "before": [n]}
        )
    # 01:30 before and after the clocks go back: equal in their zone, an hour apart.
    berlin = ZoneInfo("Europe/Berlin")
    for fold in (0, 1):
        base.append({**base[0], "at": datetime(2026, 10, 25, 2, 30, tzinfo=berlin, fold=fold)})
    old = [{"seq": i + 1, **r} for i, r in enumerate(base)]
    new = [{"seq": i + 101, **r} for i, r in enumerate(base)]
    columns = list(new[0])
    async with core.store.session() as s:
        await s.execute(insert(table), old)
        await insert_many(s, table, columns, [tuple(r[c] for c in columns) for r in new])
    rows = await _raw(core, "audit_entry")
    half = len(rows) // 2
    assert rows[half - 1]["at"] != rows[half - 2]["at"]  # the two folds
    for before, after in zip(rows[:half], rows[half:], strict=True):
        for column in before:
            if column not in ("id", "seq"):
                assert before[column] == after[column], column
                assert type(before[column]) is type(after[column]), column


async def test_a_column_with_a_computed_default_must_be_given(core: Core) -> None:
    async with core.store.session() as s:
        with pytest.raises(ValueError, match="computed default; give its value"):
            await insert_many(
                s,
                cast(Table, Appointment.__table__),
                ["practice_id", "start", "end", "updated_at"],
                [(1, datetime.now(UTC), datetime.now(UTC), datetime.now(UTC))],
            )


async def test_encrypt_many_reads_back_and_keeps_none() -> None:
    from sync.store.crypto import SecretBox, new_key

    box = SecretBox(new_key())
    sealed = box.encrypt_many([b"a", None, "Zoë".encode(), b""])
    assert sealed[1] is None
    assert [box.decrypt(v) for v in sealed if v is not None] == [b"a", "Zoë".encode(), b""]
    assert len({v for v in sealed if v is not None}) == 3


@pytest.mark.parametrize("repeat", [1, 3, 500])
async def test_long_columns_are_converted_as_their_bind_processor_converts_them(core: Core, repeat: int) -> None:
    """Past the memo's probe (distinct values: converted one by one; repeated ones: memoized),
    each value is stored as the column type's own bind processor stores it."""
    from sync.store.bulk import _PROBE, _stored

    start = datetime(2026, 3, 1, 9, 30, tzinfo=BERLIN)
    count = _PROBE * 4 + 7
    columns: dict[str, list[Any]] = {
        "start": [start + timedelta(minutes=n // repeat) for n in range(count)],
        "source_uid": [f"uid-{n // repeat}" for n in range(count)],
        "version": [n // repeat for n in range(count)],
        "exdates": [[] if n % 5 else [f"2026-03-{1 + n // repeat % 28:02d}"] for n in range(count)],
    }
    async with core.store.session() as s:
        dialect = (await s.connection()).dialect
    table = cast(Table, Appointment.__table__)
    for name, values in columns.items():
        process = table.c[name].type._cached_bind_processor(dialect)
        expected = values if process is None else [process(v) for v in values]
        assert _stored(table.c[name], dialect, values) == expected, name
    after = [{"start": (start + timedelta(minutes=n)).isoformat(), "n": n} for n in range(count)]
    process = AuditEntry.__table__.c.after.type._cached_bind_processor(dialect)
    assert _stored(AuditEntry.__table__.c.after, dialect, after) == [process(v) for v in after]
