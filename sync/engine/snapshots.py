"""Loading the planner's plain snapshots from the database, in few set-based queries.

Everything here costs in proportion to what is asked for: links by remote id or UID for an
incremental sync, all of one calendar's links only for a full one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.contract import ProviderError
from sync.engine import series
from sync.engine.plan import ACTIVE, CalendarView, Canonical, LinkView
from sync.engine.series import parse_exdates
from sync.integrations import registry
from sync.store.model import Appointment, Calendar, Connection, Link

__all__ = [
    "appointment_rows",
    "calendar_view",
    "canonical",
    "load_appointments",
    "load_links",
    "load_mirrors",
    "load_overlapping",
    "load_unseen_links",
    "load_writable_sources",
    "parse_exdates",
]

_CHUNK = 500  # stay well below SQLite's bound-parameter limit


def canonical(row: Any) -> Canonical:
    """A Canonical from an Appointment row (ORM object or Core row with the same names)."""
    return Canonical(
        id=row.id, practitioner_id=row.practitioner_id, start=row.start, end=row.end, status=row.status,
        version=row.version, title=row.title, client_name=row.client_name, client_email=row.client_email,
        notes=row.notes, service=row.service, location_text=row.location_text, tzid=row.tzid,
        all_day=bool(row.all_day), rrule=row.rrule, exdates=parse_exdates(row.exdates),
        rdates=parse_exdates(getattr(row, "rdates", None)),
        transparent=bool(row.transparent), source_calendar_id=row.source_calendar_id,
        source_uid=row.source_uid, recurrence_key=row.recurrence_key or "",
    )


def calendar_view(cal: Calendar, conn: Connection) -> CalendarView:
    return CalendarView(
        id=cal.id, role=cal.role, projection=cal.projection,
        practitioner_id=cal.practitioner_id if cal.practitioner_id is not None else conn.practitioner_id,
        practice_id=conn.practice_id, read_only=cal.read_only, show_as_free=cal.show_as_free,
        sync_enabled=cal.sync_enabled and conn.sync_enabled, connection_id=conn.id,
    )


async def load_mirrors(session: AsyncSession, practice_id: int) -> list[CalendarView]:
    """Every enabled mirror calendar of a practice."""
    rows = await session.execute(
        select(Calendar, Connection)
        .join(Connection, Calendar.connection_id == Connection.id)
        .where(Connection.practice_id == practice_id, Calendar.role == "mirror")
    )
    return [v for cal, conn in rows.tuples() if (v := calendar_view(cal, conn)).sync_enabled]


async def load_writable_sources(session: AsyncSession, practice_id: int) -> frozenset[int]:
    """The practice's source calendars clinicbot may change: not read-only, not a booking platform's
    (a platform is the truth for its bookings; a hand edit of a copy never moves one)."""
    rows = await session.execute(
        select(Calendar.id, Connection.provider).join(Connection, Calendar.connection_id == Connection.id)
        .where(Connection.practice_id == practice_id, Calendar.role == "source", Calendar.read_only.is_(False)))
    out = set()
    for cal_id, provider in rows.tuples():
        try:
            booking = registry.get(provider).booking_source is not None
        except ProviderError:  # not loadable here: its calendar's own read-only flag is all we know
            booking = False
        if not booking:
            out.add(cal_id)
    return frozenset(out)


def _link_view(r: Any) -> LinkView:
    return LinkView(r.id, r.appointment_id, r.calendar_id, r.remote_id, r.etag, r.content_hash, r.state)


_LINK_COLS = (Link.id, Link.appointment_id, Link.calendar_id, Link.remote_id, Link.etag, Link.content_hash,
              Link.state)


async def load_links(
    session: AsyncSession,
    calendar_id: int,
    *,
    remote_ids: Sequence[str] | None = None,
    uids: Sequence[str] = (),
) -> dict[str, list[LinkView]]:
    """This calendar's links keyed by remote id: all of them (remote_ids None) or those asked for."""
    out: dict[str, list[LinkView]] = defaultdict(list)
    base = select(*_LINK_COLS).where(Link.calendar_id == calendar_id)
    if remote_ids is None:
        for r in await session.execute(base):
            out[r.remote_id or ""].append(_link_view(r))
        return out
    keys = list(dict.fromkeys(remote_ids))
    uid_list = list(dict.fromkeys(uids))
    seen: set[int] = set()
    # Two indexed lookups, not one query with OR: SQLite answers "remote_id IN (...) OR
    # appointment_id IN (...)" by scanning every link of the calendar (9 ms a page at 10,000 links).
    conds = [Link.remote_id.in_(keys[i:i + _CHUNK]) for i in range(0, len(keys), _CHUNK)]
    conds += [Link.appointment_id.in_(select(Appointment.id).where(
        Appointment.source_calendar_id == calendar_id, Appointment.source_uid.in_(uid_list[i:i + _CHUNK])))
        for i in range(0, len(uid_list), _CHUNK)]
    for cond in conds:
        for r in await session.execute(base.where(cond)):
            if r.id not in seen:
                seen.add(r.id)
                out[r.remote_id or ""].append(_link_view(r))
    return out


async def load_unseen_links(
    session: AsyncSession, calendar_id: int, seen: Container[str]
) -> dict[str, list[LinkView]]:
    """This calendar's links whose remote id is not in `seen` (keyed as `load_links` keys them)."""
    ids = [i for i, rid in (await session.execute(
        select(Link.id, Link.remote_id).where(Link.calendar_id == calendar_id))).tuples() if (rid or "") not in seen]
    out: dict[str, list[LinkView]] = defaultdict(list)
    for i in range(0, len(ids), _CHUNK):
        for r in await session.execute(select(*_LINK_COLS).where(Link.id.in_(ids[i:i + _CHUNK]))):
            out[r.remote_id or ""].append(_link_view(r))
    return out


async def appointment_rows(session: AsyncSession, ids: Iterable[int]) -> dict[int, Appointment]:
    """The Appointment objects with these ids, in one statement per 500 (not one `session.get` each).

    Holding the returned dict keeps them in the session's identity map (which holds objects weakly),
    so a later `session.get` of one of them costs no query."""
    wanted = list(dict.fromkeys(ids))
    out: dict[int, Appointment] = {}
    for i in range(0, len(wanted), _CHUNK):
        for appt in await session.scalars(select(Appointment).where(Appointment.id.in_(wanted[i:i + _CHUNK]))):
            out[appt.id] = appt
    return out


async def load_appointments(session: AsyncSession, ids: Iterable[int]) -> dict[int, Canonical]:
    wanted = list(dict.fromkeys(ids))
    out: dict[int, Canonical] = {}
    table = Appointment.__table__
    for i in range(0, len(wanted), _CHUNK):
        rows = await session.execute(select(table).where(table.c.id.in_(wanted[i:i + _CHUNK])))
        for r in rows:
            out[r.id] = canonical(r)
    return out


async def load_overlapping(
    session: AsyncSession, practitioner_id: int | None, start: datetime, end: datetime,
    exclude_calendar: int | None = None,
) -> list[Canonical]:
    """Active appointments of a practitioner overlapping [start, end) (not those of `exclude_calendar`
    when given); a series kept as one row (CalDAV, ICS) gives each of its visits in the span, all
    with the series' id."""
    if practitioner_id is None:
        return []
    table = Appointment.__table__
    other_source = or_(table.c.source_calendar_id.is_(None), table.c.source_calendar_id != (
        exclude_calendar if exclude_calendar is not None else -1))
    rows = await session.execute(
        select(table).where(
            table.c.practitioner_id == practitioner_id, table.c.status.in_(ACTIVE), table.c.start < end,
            table.c.end > start, other_source, series.single(),
        )
    )
    found = [canonical(r) for r in rows]
    visits = await series.occurrences_between(
        session, start, end, table.c.practitioner_id == practitioner_id, table.c.status.in_(ACTIVE), other_source
    )
    return found + [canonical(v) for v in visits]
