"""Building blocks for engine tests: a practice wired to in-memory calendar servers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from sync.contract import CalendarProvider
from sync.contract.items import EventData
from sync.runtime.core import Core
from sync.store.model import Appointment, Calendar, Connection, Link, OutboxOp, Practice, Practitioner
from tests.fakes.memory_calendar import MemoryCalendar, MemoryServer

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@dataclass
class Clinic:
    """A practice with one practitioner, a source calendar and mirror calendars on memory servers."""

    core: Core
    practice_id: int = 0
    practitioner_id: int = 0
    servers: dict[str, MemoryServer] = field(default_factory=dict)
    calendars: dict[str, int] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)
    series: dict[str, bool] = field(default_factory=dict)
    now: datetime = NOW

    def clock(self) -> datetime:
        return self.now

    def factory(self, conn: Connection, cal: Calendar) -> CalendarProvider:
        return MemoryCalendar(self.servers[cal.remote_id], series=self.series.get(cal.remote_id, True))

    async def add_calendar(self, name: str, role: str, projection: str = "initials",
                           practitioner: bool = True, series: bool = True) -> int:
        self.servers[name] = MemoryServer()
        self.series[name] = series
        async with self.core.store.session() as s:
            conn = Connection(practice_id=self.practice_id, provider="memory", account=name,
                              practitioner_id=self.practitioner_id if practitioner else None, config={})
            s.add(conn)
            await s.flush()
            cal = Calendar(connection_id=conn.id, remote_id=name, name=name, role=role, projection=projection)
            s.add(cal)
            await s.flush()
            self.calendars[name], self.connections[name] = cal.id, conn.id
        return self.calendars[name]


async def make_clinic(core: Core, settings: dict[str, Any] | None = None, *, mirrors: int = 1,
                      projection: str = "initials", source_series: bool = True) -> Clinic:
    clinic = Clinic(core)
    core.clock = clinic.clock
    core.services.provider_factory = clinic.factory
    async with core.store.session() as s:
        p = Practice(name="Clinic", timezone="Europe/London", settings=settings or {})
        s.add(p)
        await s.flush()
        pr = Practitioner(practice_id=p.id, name="Dr Lee", handle="dr-lee", timezone="Europe/London")
        s.add(pr)
        await s.flush()
        clinic.practice_id, clinic.practitioner_id = p.id, pr.id
    await clinic.add_calendar("source", "source", series=source_series)
    for i in range(mirrors):
        await clinic.add_calendar(f"mirror{i}", "mirror", projection=projection)
    return clinic


def booking(uid: str, start: datetime, minutes: int = 30, **kw: Any) -> EventData:
    kw.setdefault("summary", "Physio: Jane Roe")
    kw.setdefault("client_name", "Jane Roe")
    kw.setdefault("service", "Physio")
    return EventData(uid=uid, start=start, end=start + timedelta(minutes=minutes), tzid="Europe/London", **kw)


async def appointments(core: Core) -> list[Appointment]:
    async with core.store.session() as s:
        return list((await s.scalars(select(Appointment).order_by(Appointment.id))).all())


async def links(core: Core) -> list[Link]:
    async with core.store.session() as s:
        return list((await s.scalars(select(Link).order_by(Link.id))).all())


async def ops(core: Core) -> list[OutboxOp]:
    async with core.store.session() as s:
        return list((await s.scalars(select(OutboxOp).order_by(OutboxOp.id))).all())
