"""A calendar whose role or sync switch changes while it is being read: nothing of that read is
applied (a source made a work calendar mid-read used to import the work events as bookings, and
`track` then failed on the database), and the next sync reads it as it is now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sync.engine import run
from sync.engine.run import sync_connection
from sync.runtime.core import Core
from sync.services.connections import set_calendar, set_sync
from sync.store.model import Calendar
from tests.sync.helpers import NOW, appointments, booking, make_clinic


def _changed_while_read(monkeypatch: pytest.MonkeyPatch, calendar_id: int, change: Any) -> list[int]:
    """The sync reads the calendar's settings, then `change` commits, then the sync reads and applies."""
    real = run._load_target
    done: list[int] = []

    async def load(core: Core, cal_id: int) -> Any:
        target = await real(core, cal_id)
        if cal_id == calendar_id and not done:
            done.append(cal_id)
            await change()
        return target

    monkeypatch.setattr(run, "_load_target", load)
    return done


async def test_a_source_made_a_work_calendar_while_read_imports_nothing(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic = await make_clinic(core)
    cal_id = clinic.calendars["source"]
    clinic.servers["source"].put(booking("outreach-lunch", NOW + timedelta(hours=3)))

    async def make_work() -> None:
        await set_calendar(core, cal_id, role="work", actor="cli:test")

    done = _changed_while_read(monkeypatch, cal_id, make_work)
    report = await sync_connection(core, clinic.connections["source"])
    assert done == [cal_id] and report.created == 0 and report.failed == 0
    assert await appointments(core) == []  # a work event never becomes a booking by itself
    async with core.store.session() as s:
        cal = await s.get(Calendar, cal_id)
        assert cal is not None and cal.role == "work" and cal.cursor is None  # read in full when next synced


async def test_sync_turned_off_while_read_applies_nothing_and_resumes_from_the_same_cursor(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic = await make_clinic(core)
    cal_id, src = clinic.calendars["source"], clinic.servers["source"]
    src.put(booking("b1", NOW + timedelta(hours=3)))
    await sync_connection(core, clinic.connections["source"])
    async with core.store.session() as s:
        cursor = (await s.get(Calendar, cal_id)).cursor  # type: ignore[union-attr]
    src.put(booking("b2", NOW + timedelta(hours=5)))

    async def sync_off() -> None:
        await set_sync(core, clinic.practice_id, enabled=False, calendar_ids=[cal_id], actor="cli:test")

    _changed_while_read(monkeypatch, cal_id, sync_off)
    await run.sync_calendar(core, cal_id)
    assert [a.source_uid for a in await appointments(core)] == ["b1"]
    async with core.store.session() as s:
        assert (await s.get(Calendar, cal_id)).cursor == cursor  # type: ignore[union-attr]

    monkeypatch.undo()
    await set_sync(core, clinic.practice_id, enabled=True, calendar_ids=[cal_id], actor="cli:test")
    report = await sync_connection(core, clinic.connections["source"])
    assert report.created == 1
    assert sorted(a.source_uid or "" for a in await appointments(core)) == ["b1", "b2"]
