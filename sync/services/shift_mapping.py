"""Who gets which shifts: the identity field, people mapped by hand, and what the mapping card shows.

The scheduler's identity field (UniqueID or Custom1-4) names each person's Microsoft sign-in; an
empty one is the opt-out. An admin may also map a person by hand, to a UPN or to a practitioner
(whose Microsoft sign-in, else e-mail, is then the mailbox), for people the scheduler holds no
sign-in for, or a wrong one. Hand mappings live in the shift source's config ("people", keyed by
the person's name as the schedule spells it, case and spacing aside) and win over the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from sync.contract import ProviderError
from sync.contract.shifts import AssignmentFlags
from sync.runtime.core import Core
from sync.services import shifts
from sync.services.errors import Conflict, Invalid, NotFound
from sync.store import audit
from sync.store.model import ExternalIdentity, Practitioner, ShiftRow, utcnow

__all__ = ["MappingState", "PersonState", "map_person", "mapping_state", "valid_upn"]

_UPN = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}|[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class PersonState:
    """A person on the schedule's future shifts and where their shifts go."""

    name: str
    #: The mailbox their shifts go to ("" when none: opted out or unmapped).
    mailbox: str
    #: "field" (the identity field), "mapped" (by an admin), or "none".
    how: str
    #: Microsoft 365 did not know the mailbox at the last publish.
    unknown: bool
    shifts: int


@dataclass(frozen=True, slots=True)
class MappingState:
    """What the mapping card shows."""

    identity_field: str
    people: tuple[PersonState, ...]
    assignments: tuple[tuple[str, AssignmentFlags], ...]
    #: (id, name) of the practice's practitioners, for a picker.
    practitioners: tuple[tuple[int, str], ...]


async def mapping_state(core: Core, practice: str | int | None) -> MappingState:
    """The people on future shifts with where their shifts go, the assignments with their flags."""
    async with core.store.session() as s:
        row, source = await shifts.shift_source(s, practice, "system", create=False)
        practitioners = tuple((int(i), str(n)) for i, n in (await s.execute(
            select(Practitioner.id, Practitioner.name).where(Practitioner.practice_id == row.id,
                                                             Practitioner.active.is_(True))
            .order_by(Practitioner.name))).all())
        if source is None:
            return MappingState("unique_id", (), (), practitioners)
        config = dict(source.config or {})
        field_name = str(config.get("identity_field") or "unique_id")
        overrides = shifts.person_overrides(config)
        unknown = {str(u).lower() for u in ((config.get("last_publish") or {}).get("unknown_people") or [])}
        found = (await s.execute(select(ShiftRow.person_name, ShiftRow.person_ids, ShiftRow.assignment).where(
            ShiftRow.source_id == source.id, ShiftRow.live.is_(True), ShiftRow.ends_at > utcnow()))).all()
    people: dict[str, tuple[str, str, str, int]] = {}
    for name, ids, _assignment in found:
        key = shifts.person_key(name or "")
        mapped = overrides.get(key)
        if mapped and mapped.get("upn"):
            mailbox, how = str(mapped["upn"]).lower(), "mapped"
        else:
            mailbox = str((ids or {}).get(field_name) or "").strip().lower()
            how = "field" if mailbox else "none"
        before = people.get(key)
        people[key] = (name, mailbox, how, (before[3] if before else 0) + 1)
    assignments = sorted({a for _n, _i, a in found}, key=str.casefold)
    return MappingState(
        identity_field=field_name,
        people=tuple(PersonState(n, m, h, bool(m) and m in unknown, c)
                     for n, m, h, c in sorted(people.values(), key=lambda p: (p[2] != "none", p[0].casefold()))),
        assignments=tuple((a, shifts.assignment_flags(config, a)) for a in assignments),
        practitioners=practitioners,
    )


def valid_upn(upn: str) -> str:
    """The UPN as stored (name@domain in lower case, or an object id); Invalid when it is not one."""
    target = upn.strip()
    if not _UPN.fullmatch(target):
        raise Invalid(f"{target[:80]!r} is not a Microsoft sign-in (name@domain) or object id")
    return target.lower() if "@" in target else target


async def map_person(core: Core, practice: str | int | None, person: str, *, actor: str, upn: str | None = None,
                     practitioner_id: int | None = None, check: bool = False) -> tuple[str, int]:
    """Send `person`'s shifts to a UPN or a practitioner's mailbox (neither: undo the hand mapping).

    With `check`, a UPN is first looked up in Microsoft 365 where the practice-wide Outlook
    connection exists; one it does not know is refused (NotFound) and nothing changes.
    Returns (where their shifts now go, how many future shifts change)."""
    wanted = " ".join(person.split())
    if not wanted or len(wanted) > 200:
        raise Invalid("name the person as the schedule names them")
    if check and practitioner_id is None and upn is not None and upn.strip():
        target = valid_upn(upn)
        try:
            unknown = await shifts.check_people(core, practice, [target])
        except ProviderError as exc:
            raise Conflict(f"Microsoft 365 could not be asked about {target} ({exc}); try again") from None
        if unknown:
            raise NotFound(f"Microsoft 365 has no user {target}; check the spelling (their sign-in, "
                           "as name@domain) and try again")
    key = shifts.person_key(wanted)
    async with core.store.session() as s:
        row, source = await shifts.shift_source(s, practice, actor, create=False)
        if source is None:
            raise NotFound("no shift schedule has been imported yet: `clinicbot shifts import FILE`")
        names = (await s.scalars(select(ShiftRow.person_name).where(ShiftRow.source_id == source.id)
                                 .distinct())).all()
        spelled = next((n for n in names if shifts.person_key(n) == key), None)
        if spelled is None:
            raise NotFound(f"nobody called {wanted!r} is on the schedule; names are as the scheduler exports them")
        entry: dict[str, object] | None
        if practitioner_id is not None:
            who = await s.get(Practitioner, practitioner_id)
            if who is None or who.practice_id != row.id:
                raise NotFound("no such practitioner in this practice")
            sign_in = await s.scalar(select(ExternalIdentity.external_id).where(
                ExternalIdentity.practitioner_id == who.id, ExternalIdentity.integration == "graph"))
            target = str(sign_in or who.email or "").strip()
            if not target:
                raise Invalid(f"{who.name} has no Microsoft sign-in or e-mail on record; map {spelled} to a UPN")
            entry = {"upn": target.lower() if "@" in target else target, "practitioner_id": who.id}
        elif upn is not None and upn.strip():
            entry = {"upn": valid_upn(upn)}
        else:
            entry = None
        config = dict(source.config or {})
        people = dict(shifts.person_overrides(config))
        before = people.get(key)
        if entry is None:
            people.pop(key, None)
        else:
            people[key] = entry
        source.config = {**config, "people": people}
        changed = await shifts.replan(s, row, source)
        await audit.record(s, actor=actor, action="shifts.map_person", practice_id=row.id,
                           before={"person": spelled, **(before or {})},
                           after={"person": spelled, **(entry or {})}, details={"shifts_changed": changed})
    return (str(entry["upn"]) if entry else ""), changed
