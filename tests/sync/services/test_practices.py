"""Practices: on a fresh install the first `practice create` names the placeholder practice."""

from __future__ import annotations

from sqlalchemy import select

from sync.runtime.core import Core
from sync.services.practices import add_practitioner, create_practice, default_practice, list_practices
from sync.store.model import AuditEntry


async def test_first_practice_takes_the_place_of_the_unused_default(core: Core) -> None:
    async with core.store.session() as s:
        made = await create_practice(s, "Lee Clinic", "Europe/Berlin", "cli:test")
    async with core.store.session() as s:
        [only] = await list_practices(s)
        assert (only.id, only.name, only.timezone) == (made.id, "Lee Clinic", "Europe/Berlin")
        assert (await default_practice(s)).id == made.id  # where practitioners and connections go
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "practice.create"))
        assert entry is not None and entry.action == "practice.create" and entry.details == {"replaces": "default"}
        second = await create_practice(s, "Hill Clinic", "UTC", "cli:test")
        assert second.id != made.id
        assert [p.name for p in await list_practices(s)] == ["Lee Clinic", "Hill Clinic"]


async def test_a_default_practice_in_use_is_kept(core: Core) -> None:
    async with core.store.session() as s:
        default = await default_practice(s)
        await add_practitioner(s, default, "Dr Lee", email=None, tz=None, actor="cli:test")
        await create_practice(s, "Lee Clinic", "Europe/Berlin", "cli:test")
        assert [p.name for p in await list_practices(s)] == ["default", "Lee Clinic"]
