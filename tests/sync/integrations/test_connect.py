"""The core's connect: the calendars found are stored with the read-only flag their platform
reports, and `connection refresh` finds calendars added later without touching the roles given."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from sync.integrations import registry
from sync.integrations.connect import refresh_calendars
from sync.runtime.core import Core
from sync.services.connections import ConnectionError_, add_connection, refresh_connection, set_calendar
from sync.services.practices import create_practice
from sync.store.model import AuditEntry, Calendar
from tests.fakes.memory_calendar import MemoryServer
from tests.sync import memory_adapter


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """CalDAV served from memory: `memory://acct/NAME` calendars."""
    monkeypatch.setitem(registry.OVERRIDES, "caldav", memory_adapter.INTEGRATION)
    memory_adapter.SERVERS.clear()
    memory_adapter.READ_ONLY.clear()
    for name in ("work", "holidays"):
        memory_adapter.SERVERS[f"memory://acct/{name}"] = MemoryServer()
    memory_adapter.READ_ONLY.add("memory://acct/holidays")
    yield
    memory_adapter.SERVERS.clear()
    memory_adapter.READ_ONLY.clear()


async def test_read_only_comes_from_the_adapter_and_refuses_the_mirror_role(core: Core, memory: None) -> None:
    async with core.store.session() as s:
        await create_practice(s, "Lee Clinic", "UTC", "test")
    added = await add_connection(core, "caldav", "memory://acct/", actor="test")
    by_name = {c["name"]: c for c in added.calendars}
    assert by_name["holidays"]["read_only"] is True and by_name["work"]["read_only"] is False
    assert {c["role"] for c in added.calendars} == {"busy"}  # CalDAV's default: nothing written until set
    # A calendar the platform shares read-only is never a mirror, whatever its integration.
    with pytest.raises(ConnectionError_, match="read-only"):
        await set_calendar(core, by_name["holidays"]["id"], role="mirror", actor="test")
    mirror = await set_calendar(core, by_name["work"]["id"], role="mirror", actor="test")
    assert mirror["role"] == "mirror"


async def test_refresh_adds_new_calendars_and_keeps_given_roles(core: Core, memory: None) -> None:
    async with core.store.session() as s:
        await create_practice(s, "Lee Clinic", "UTC", "test")
    added = await add_connection(core, "caldav", "memory://acct/", actor="test")
    work = next(c for c in added.calendars if c["name"] == "work")
    await set_calendar(core, work["id"], role="source", actor="test")
    memory_adapter.SERVERS["memory://acct/rooms"] = MemoryServer()
    memory_adapter.READ_ONLY.add("memory://acct/work")  # its owner made it read-only meanwhile

    saved = await refresh_calendars(core, added.connection_id, actor="test")
    assert saved.added == 1
    rows = {c["name"]: c for c in saved.calendars}
    assert set(rows) == {"work", "holidays", "rooms"}
    assert rows["work"]["role"] == "source" and rows["work"]["read_only"] is True
    assert rows["rooms"]["role"] == "busy" and rows["rooms"]["read_only"] is False
    again = await refresh_calendars(core, added.connection_id, actor="test")
    assert again.added == 0 and len(again.calendars) == 3
    async with core.store.session() as s:
        assert len((await s.scalars(select(Calendar))).all()) == 3
        actions = (await s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))).all()
    assert actions.count("connection.refresh") == 2


@pytest.mark.parametrize("ref", ["\u00b2", "\u0661", "9" * 5000])
async def test_refresh_names_a_connection_by_ascii_digits_only(core: Core, memory: None, ref: str) -> None:
    """`refresh ²` (isdigit() says yes, int() says no) or 5,000 digits: "no such connection", not a crash."""
    async with core.store.session() as s:
        practice = await create_practice(s, "Lee Clinic", "UTC", "test")
    added = await add_connection(core, "caldav", "memory://acct/", actor="test")
    with pytest.raises(ConnectionError_, match="no connection is called"):
        await refresh_connection(core, practice.id, ref, actor="test")
    saved = await refresh_connection(core, practice.id, f"#{added.connection_id}", actor="test")
    assert saved.connection_id == added.connection_id
