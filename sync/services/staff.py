"""Staff mapping: which practitioner a platform's staff id names (Square team member, Acuity calendar...).

Booking platforms name staff their own way; an admin maps each external id to a practitioner once,
in chat or the CLI. Mapping also assigns what was waiting: the booking calendars of that staff id
get the practitioner, and their unassigned appointments with it, in the same transaction, so a
booking made before the mapping is never lost or left half-assigned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import Refused
from sync.engine.mirror_ops import ApptRef, mirror_ops
from sync.engine.plan import Policy
from sync.engine.snapshots import load_mirrors
from sync.integrations import registry
from sync.store import audit
from sync.store.model import Appointment, Calendar, Connection, ExternalIdentity, Practice, Practitioner, utcnow

__all__ = [
    "KINDS",
    "StaffError",
    "StaffMapping",
    "clear_identities",
    "find_by_external_id",
    "identities_of",
    "list_mappings",
    "map_staff",
    "set_identities",
    "unassigned_calendars",
    "unmap_staff",
]

#: The identity kind each integration's staff ids have, when the admin does not name one.
KINDS: dict[str, str] = {
    "square": "team_member",
    "acuity": "calendar",
    "calendly": "user_uri",
    "graph": "upn",
}
_KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")


class StaffError(Exception):
    """A mapping that cannot be made; the message is safe to show to an admin."""


@dataclass(frozen=True, slots=True)
class StaffMapping:
    """One mapping as plain data (what chat and the CLI show)."""

    id: int
    practitioner_id: int
    practitioner: str
    integration: str
    kind: str
    external_id: str


def _declared_kind(integration: str) -> str:
    """The staff-id kind the integration's descriptor declares ("" when none, or not in this build)."""
    try:
        return registry.get(integration).staff_kind
    except Refused:
        return ""


def _kind(integration: str, kind: str | None) -> str:
    chosen = (kind or KINDS.get(integration) or _declared_kind(integration)).strip().lower()
    if not _KIND_RE.fullmatch(chosen):
        raise StaffError(f"say which kind of {integration} id this is (for example --kind team_member)")
    return chosen


def _clean(integration: str, external_id: str) -> tuple[str, str]:
    name = integration.strip().lower()
    ext = external_id.strip()
    if not name.isidentifier():
        raise StaffError(f"{integration!r} is not an integration name")
    if not ext or len(ext) > 512:
        raise StaffError("the staff id must be 1 to 512 characters")
    return name, ext


def _row(identity: ExternalIdentity, practitioner: Practitioner) -> StaffMapping:
    return StaffMapping(identity.id, practitioner.id, practitioner.handle or practitioner.name,
                        identity.integration, identity.kind, identity.external_id)


async def find_by_external_id(
    session: AsyncSession, integration: str, external_id: str, kind: str | None = None
) -> Practitioner | None:
    """The practitioner mapped to that staff id on that integration, or None."""
    name, ext = _clean(integration, external_id)
    return await session.scalar(
        select(Practitioner).join(ExternalIdentity, ExternalIdentity.practitioner_id == Practitioner.id).where(
            ExternalIdentity.integration == name, ExternalIdentity.kind == _kind(name, kind),
            ExternalIdentity.external_id == ext,
        )
    )


async def map_staff(
    session: AsyncSession, practitioner: Practitioner | int, integration: str, external_id: str, *,
    actor: str, kind: str | None = None,
) -> StaffMapping:
    """Map the staff id to `practitioner` (re-mapping moves it) and assign its waiting bookings; audited."""
    if isinstance(practitioner, int):
        found = await session.get(Practitioner, practitioner)
        if found is None:
            raise StaffError("that practitioner no longer exists")
        practitioner = found
    name, ext = _clean(integration, external_id)
    chosen = _kind(name, kind)
    identity = await session.scalar(select(ExternalIdentity).where(
        ExternalIdentity.integration == name, ExternalIdentity.kind == chosen, ExternalIdentity.external_id == ext))
    before = None
    if identity is not None:
        owner = await session.get(Practitioner, identity.practitioner_id)
        if owner is not None and owner.practice_id != practitioner.practice_id:
            raise StaffError(f"that {name} id is mapped in another practice")
        before = {"practitioner_id": identity.practitioner_id}
        identity.practitioner_id = practitioner.id
        identity.created_by = actor
    else:
        identity = ExternalIdentity(practitioner_id=practitioner.id, integration=name, kind=chosen,
                                    external_id=ext, created_by=actor)
        session.add(identity)
    await session.flush()
    calendars = list((await session.scalars(
        select(Calendar.id).join(Connection, Connection.id == Calendar.connection_id).where(
            Connection.provider == name, Connection.practice_id == practitioner.practice_id,
            Calendar.remote_id == ext,
        ))).all())
    assigned = 0
    if calendars:
        await session.execute(
            update(Calendar).where(Calendar.id.in_(calendars)).values(practitioner_id=practitioner.id))
        assigned = await _assign_waiting(session, calendars, practitioner)
    await audit.record(
        session, actor=actor, action="staff.map", practice_id=practitioner.practice_id, before=before,
        after={"practitioner_id": practitioner.id},
        details={"integration": name, "kind": chosen, "external_id": ext, "assigned": assigned},
    )
    return _row(identity, practitioner)


async def _assign_waiting(session: AsyncSession, calendars: list[int], practitioner: Practitioner) -> int:
    """Give the calendars' unassigned appointments the practitioner, and queue their mirror copies."""
    waiting = list((await session.scalars(select(Appointment).where(
        Appointment.source_calendar_id.in_(calendars), Appointment.practitioner_id.is_(None)))).all())
    for appt in waiting:
        appt.practitioner_id = practitioner.id
        appt.version += 1
    await session.flush()
    mirrors = await load_mirrors(session, practitioner.practice_id)
    if waiting and mirrors:
        practice = await session.get(Practice, practitioner.practice_id)
        policy = Policy.of(practice)
        refs = [ApptRef(a.id, a.version, a.practitioner_id, a.status == "cancelled") for a in waiting]
        await mirror_ops(session, refs, mirrors, policy, utcnow())
    return len(waiting)


async def unmap_staff(
    session: AsyncSession, practice_id: int, integration: str, external_id: str, *, actor: str, kind: str | None = None
) -> StaffMapping:
    """Remove the mapping; the platform's calendars of that id become unassigned again (appointments keep theirs)."""
    name, ext = _clean(integration, external_id)
    chosen = _kind(name, kind)
    found = (await session.execute(
        select(ExternalIdentity, Practitioner).join(Practitioner, Practitioner.id == ExternalIdentity.practitioner_id)
        .where(ExternalIdentity.integration == name, ExternalIdentity.kind == chosen,
               ExternalIdentity.external_id == ext, Practitioner.practice_id == practice_id)
    )).first()
    if found is None:
        raise StaffError(f"no practitioner is mapped to {name} {chosen} {ext}")
    identity, practitioner = found.tuple()
    mapping = _row(identity, practitioner)
    calendars = select(Calendar.id).join(Connection, Connection.id == Calendar.connection_id).where(
        Connection.provider == name, Connection.practice_id == practice_id, Calendar.remote_id == ext)
    await session.execute(update(Calendar).where(Calendar.id.in_(calendars)).values(practitioner_id=None)
                          .execution_options(synchronize_session=False))
    await session.delete(identity)
    await audit.record(session, actor=actor, action="staff.unmap", practice_id=practice_id,
                       before={"practitioner_id": practitioner.id},
                       details={"integration": name, "kind": chosen, "external_id": ext})
    return mapping


async def list_mappings(session: AsyncSession, practice_id: int, integration: str | None = None) -> list[StaffMapping]:
    """Every mapping of the practice, by integration then staff id."""
    stmt = (select(ExternalIdentity, Practitioner)
            .join(Practitioner, Practitioner.id == ExternalIdentity.practitioner_id)
            .where(Practitioner.practice_id == practice_id)
            .order_by(ExternalIdentity.integration, ExternalIdentity.kind, ExternalIdentity.external_id))
    if integration:
        stmt = stmt.where(ExternalIdentity.integration == integration.strip().lower())
    return [_row(i, p) for i, p in (await session.execute(stmt)).tuples()]


async def unassigned_calendars(session: AsyncSession, practice_id: int) -> list[tuple[str, str, str, int]]:
    """(integration, staff id, name, unassigned appointments) of booking-platform staff nobody is mapped to."""
    from sqlalchemy import func

    rows = (await session.execute(
        select(Connection.provider, Calendar.remote_id, Calendar.name, func.count(Appointment.id))
        .join(Connection, Connection.id == Calendar.connection_id)
        .join(Appointment, (Appointment.source_calendar_id == Calendar.id) & Appointment.practitioner_id.is_(None))
        .where(Connection.practice_id == practice_id, Calendar.role == "source", Calendar.practitioner_id.is_(None),
               Appointment.status != "cancelled")
        .group_by(Connection.provider, Calendar.remote_id, Calendar.name)
        .order_by(Connection.provider, Calendar.remote_id)
    )).tuples()
    return [(p, r, n or r, int(c)) for p, r, n, c in rows]


async def identities_of(
    session: AsyncSession, practitioner_ids: Iterable[int], integration: str
) -> dict[int, dict[str, str]]:
    """Each practitioner's identities on one integration (kind -> external id), for many at once;
    a practitioner with none is left out."""
    ids = list(dict.fromkeys(practitioner_ids))
    out: dict[int, dict[str, str]] = {}
    if not ids:
        return out
    rows = await session.scalars(select(ExternalIdentity).where(
        ExternalIdentity.practitioner_id.in_(ids), ExternalIdentity.integration == integration.strip().lower(),
    ).order_by(ExternalIdentity.practitioner_id, ExternalIdentity.kind, ExternalIdentity.id))
    for row in rows:
        out.setdefault(row.practitioner_id, {}).setdefault(row.kind, row.external_id)
    return out


async def set_identities(
    session: AsyncSession, practitioner: Practitioner, integration: str, identities: Mapping[str, str], *,
    actor: str,
) -> dict[str, str]:
    """Make `identities` (kind -> external id) the practitioner's only ones on that integration; an id
    another practitioner of the practice held moves to this one (another practice's: StaffError). Audited."""
    name = _clean(integration, "x")[0]
    wanted = {_kind(name, kind): _clean(name, ext)[1] for kind, ext in identities.items()}
    before = (await identities_of(session, [practitioner.id], name)).get(practitioner.id, {})
    for kind, ext in wanted.items():
        held = await session.scalar(select(ExternalIdentity).where(
            ExternalIdentity.integration == name, ExternalIdentity.kind == kind, ExternalIdentity.external_id == ext))
        if held is not None and held.practitioner_id != practitioner.id:
            owner = await session.get(Practitioner, held.practitioner_id)
            if owner is not None and owner.practice_id != practitioner.practice_id:
                raise StaffError(f"that {name} {kind} is mapped in another practice")
    mine = list((await session.scalars(select(ExternalIdentity).where(
        ExternalIdentity.practitioner_id == practitioner.id, ExternalIdentity.integration == name))).all())
    for row in mine:
        if wanted.get(row.kind) != row.external_id:
            await session.delete(row)
    await session.flush()
    kept = {(r.kind, r.external_id) for r in mine if wanted.get(r.kind) == r.external_id}
    for kind, ext in wanted.items():
        if (kind, ext) in kept:
            continue
        held = await session.scalar(select(ExternalIdentity).where(
            ExternalIdentity.integration == name, ExternalIdentity.kind == kind, ExternalIdentity.external_id == ext))
        if held is not None:  # another practitioner of the practice had it: it moves
            held.practitioner_id = practitioner.id
            held.created_by = actor
        else:
            session.add(ExternalIdentity(practitioner_id=practitioner.id, integration=name, kind=kind,
                                         external_id=ext, created_by=actor))
    await session.flush()
    if before != wanted:
        await audit.record(session, actor=actor, action="staff.identities", practice_id=practitioner.practice_id,
                           before=before or None, after=dict(wanted) or None,
                           details={"integration": name, "practitioner_id": practitioner.id})
    return dict(wanted)


async def clear_identities(session: AsyncSession, practitioner: Practitioner, integration: str, *, actor: str) -> None:
    """Remove every identity of the practitioner on that integration; audited."""
    await set_identities(session, practitioner, integration, {}, actor=actor)
