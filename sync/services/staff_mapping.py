"""`staff map|unmap` for every integration: the one entry chat and the CLI call.

A booking platform's staff id is mapped as it is (sync.services.staff). An integration with a
staff-identities slot (Graph: UPN and Entra object id) has its own checks, and its practice-wide
connections address the mapped staff, so its ids go through `map_identities`, which runs the
integration's checks and updates those connections in the same transaction.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import Refused
from sync.integrations import registry
from sync.runtime.core import Core
from sync.services.connections import map_identities
from sync.services.staff import (
    KINDS,
    StaffError,
    StaffMapping,
    find_by_external_id,
    identities_of,
    list_mappings,
    map_staff,
    unmap_staff,
)
from sync.store.model import Practitioner

__all__ = ["map_member", "map_staff_member", "unmap_member", "unmap_staff_member"]


def _directory(integration: str) -> tuple[str, tuple[str, ...]] | None:
    """(integration name, its identity kinds) when the integration checks its own staff identities, else None."""
    word = integration.strip().lower()
    try:
        found = registry.get(word) if word in registry.names() else registry.resolve(word)
    except Refused as exc:  # registered but not loadable here: its checks cannot run
        raise StaffError(str(exc)) from None
    if found is None or found.staff_identities is None:
        return None
    return found.name, found.staff_identities.kinds


def _checked(name: str, values: dict[str, str | None]) -> dict[str, str]:
    slot = registry.get(name).staff_identities
    assert slot is not None
    try:
        return slot.clean(values)
    except Refused as exc:
        raise StaffError(str(exc)) from None


def _identity(name: str, kinds: tuple[str, ...], external_id: str, kind: str | None) -> tuple[str, str]:
    """(kind, checked id): the kind named, else the first of the integration's kinds that accepts the id
    (a Graph GUID is an object id, a name@domain a UPN)."""
    if kind is not None:
        chosen = kind.strip().lower()
        if chosen not in kinds:
            raise StaffError(f"{name} staff ids are {' or '.join(kinds)}, not {chosen!r}")
        return chosen, _checked(name, {chosen: external_id.strip()})[chosen]
    default = KINDS.get(name, kinds[0])
    for chosen in (default, *(k for k in kinds if k != default)):
        try:
            return chosen, _checked(name, {chosen: external_id.strip()})[chosen]
        except StaffError:
            continue
    _checked(name, {default: external_id.strip()})  # raises the default kind's message
    raise StaffError(f"{external_id!r} is not a {name} staff id")


async def _mapping(session: AsyncSession, practitioner: Practitioner, name: str, kind: str) -> StaffMapping:
    for mapping in await list_mappings(session, practitioner.practice_id, name):
        if mapping.practitioner_id == practitioner.id and mapping.kind == kind:
            return mapping
    raise StaffError(f"no {name} {kind} is mapped to that practitioner")  # map_identities just stored it


async def map_staff_member(
    session: AsyncSession, practitioner: Practitioner | int, integration: str, external_id: str, *,
    actor: str, kind: str | None = None,
) -> StaffMapping:
    """Map the staff id to the practitioner; a directory identity (Graph) is checked by its integration and
    keeps the practitioner's other kinds. Raises StaffError."""
    directory = _directory(integration)
    if directory is None:
        return await map_staff(session, practitioner, integration, external_id, actor=actor, kind=kind)
    name, kinds = directory
    chosen, ext = _identity(name, kinds, external_id, kind)
    if isinstance(practitioner, int):
        found = await session.get(Practitioner, practitioner)
        if found is None:
            raise StaffError("that practitioner no longer exists")
        practitioner = found
    held: dict[str, str | None] = dict((await identities_of(session, [practitioner.id], name)).get(practitioner.id, {}))
    held[chosen] = ext
    await map_identities(session, name, practitioner, {k: held.get(k) for k in kinds}, actor=actor)
    return await _mapping(session, practitioner, name, chosen)


async def unmap_staff_member(
    session: AsyncSession, practice_id: int, integration: str, external_id: str, *, actor: str,
    kind: str | None = None,
) -> StaffMapping:
    """Remove a mapping; a directory identity (Graph) leaves the practitioner's other kinds and the
    practice-wide connections stop addressing them when none is left. Raises StaffError."""
    directory = _directory(integration)
    if directory is None:
        return await unmap_staff(session, practice_id, integration, external_id, actor=actor, kind=kind)
    name, kinds = directory
    chosen, ext = _identity(name, kinds, external_id, kind)
    practitioner = await find_by_external_id(session, name, ext, chosen)
    if practitioner is None or practitioner.practice_id != practice_id:
        raise StaffError(f"no practitioner is mapped to {name} {chosen} {ext}")
    mapping = await _mapping(session, practitioner, name, chosen)
    held = (await identities_of(session, [practitioner.id], name)).get(practitioner.id, {})
    await map_identities(session, name, practitioner, {k: held.get(k) for k in kinds if k != chosen}, actor=actor)
    return mapping


async def map_member(
    core: Core, practitioner_id: int, integration: str, external_id: str, *, actor: str, kind: str | None = None
) -> StaffMapping:
    """`map_staff_member` in a transaction of its own (for the front ends). Raises StaffError."""
    async with core.store.session() as session:
        return await map_staff_member(session, practitioner_id, integration, external_id, actor=actor, kind=kind)


async def unmap_member(
    core: Core, practice_id: int, integration: str, external_id: str, *, actor: str, kind: str | None = None
) -> StaffMapping:
    """`unmap_staff_member` in a transaction of its own (for the front ends). Raises StaffError."""
    async with core.store.session() as session:
        return await unmap_staff_member(session, practice_id, integration, external_id, actor=actor, kind=kind)
