"""A practice's locations: added and listed from the CLI and chat (audited), and found by name.

Appointments are placed at a location by the sync engine (sync.engine.places) from what their
platform says: a Square location id, an Acuity calendar's location, an event's LOCATION text.
Each location has its name and other names or platform ids (`refs`) that mean it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sync.engine.places import load_places
from sync.runtime.core import Core
from sync.services.errors import Invalid, NotFound
from sync.services.practices import check_zone
from sync.store import audit
from sync.store.model import Appointment, Location

__all__ = ["LocationError", "LocationRow", "add_location", "find_location", "list_locations", "place_unplaced"]

MAX_REFS = 20


class LocationError(Invalid):
    """A location that cannot be added as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class LocationRow:
    id: int
    name: str
    address: str
    timezone: str
    refs: tuple[str, ...]


def _row(loc: Location) -> LocationRow:
    return LocationRow(loc.id, loc.name, loc.address or "", loc.timezone or "", tuple(str(r) for r in loc.refs or ()))


async def list_locations(core: Core, practice_id: int) -> list[LocationRow]:
    async with core.store.session() as s:
        rows = (await s.scalars(select(Location).where(Location.practice_id == practice_id)
                                .order_by(Location.name))).all()
        return [_row(loc) for loc in rows]


async def add_location(
    core: Core, practice_id: int, name: str, *, address: str | None = None, timezone: str | None = None,
    refs: Sequence[str] = (), actor: str,
) -> LocationRow:
    """Add a location (or give an existing one more other names); audited as location.add / location.refs."""
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise LocationError("a location needs a name of at most 200 characters")
    if timezone:
        check_zone(timezone)
    wanted = [" ".join(r.split()) for r in refs if r.strip()]
    if len(wanted) > MAX_REFS or any(len(r) > 200 for r in wanted):
        raise LocationError(f"give at most {MAX_REFS} other names, each at most 200 characters")
    async with core.store.session() as s:
        found = await s.scalar(select(Location).where(Location.practice_id == practice_id,
                                                      func.lower(Location.name) == name.lower()))
        if found is not None:
            before = list(found.refs or [])
            merged = list(dict.fromkeys([*before, *wanted]))
            if merged != before or (address and address != found.address):
                found.refs = merged
                found.address = address or found.address
                await s.flush()
                placed = await place_unplaced(s, practice_id)
                await audit.record(s, actor=actor, action="location.refs", practice_id=practice_id,
                                   before={"refs": before}, after={"refs": merged},
                                   details={"location_id": found.id, "placed": placed})
            return _row(found)
        loc = Location(practice_id=practice_id, name=name, address=address or None, timezone=timezone or None,
                       refs=list(dict.fromkeys(wanted)))
        s.add(loc)
        try:
            await s.flush()
        except IntegrityError:
            raise LocationError(f"a location named {name!r} was added meanwhile") from None
        placed = await place_unplaced(s, practice_id)
        await audit.record(s, actor=actor, action="location.add", practice_id=practice_id,
                           after={"name": name, "refs": loc.refs}, details={"location_id": loc.id, "placed": placed})
        return _row(loc)


async def place_unplaced(session: AsyncSession, practice_id: int, chunk: int = 500) -> int:
    """Place the practice's appointments that have a location text but no location yet (their text is
    encrypted, so it is matched here, a chunk at a time); returns how many were placed."""
    places = await load_places(session, practice_id)
    if not places:
        return 0
    placed, after = 0, 0
    while True:
        rows = (await session.scalars(
            select(Appointment).where(Appointment.practice_id == practice_id, Appointment.location_id.is_(None),
                                      Appointment.location_text.is_not(None), Appointment.id > after)
            .order_by(Appointment.id).limit(chunk))).all()
        if not rows:
            return placed
        for appt in rows:
            found = places.match(appt.location_text)
            if found is not None:
                appt.location_id = found
                placed += 1
        after = rows[-1].id
        await session.flush()


async def find_location(session: AsyncSession, practice_id: int, ref: str) -> Location:
    """A practice's location by name or one of its other names (case does not matter)."""
    word = " ".join(ref.split()).lower()
    rows = (await session.scalars(select(Location).where(Location.practice_id == practice_id))).all()
    for loc in rows:
        if loc.name.lower() == word or word in (str(r).lower() for r in loc.refs or ()):
            return loc
    names = ", ".join(sorted(loc.name for loc in rows)) or "none yet"
    raise NotFound(f"no location is called {ref!r} (locations: {names})")
