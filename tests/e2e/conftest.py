"""End-to-end fixtures: a real Radicale, a practice connected to it through the real CalDAV adapter
(as `clinicbot connection add caldav` + `calendar set` leave it), and helpers to read Radicale back.

One Radicale per test module; each test gets its own Radicale user, so discovery only finds that
test's two calendars: `bookings` (the source) and `dr-lee` (a mirror with the initials projection).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from adapters.caldav import open_calendar
from adapters.caldav.resources import resource_name
from adapters.kit.ical import serialize_calendar
from bot.app import build_app
from bot.slack.server import SLACK
from sync.boot import open_core
from sync.contract import ConnectionInfo
from sync.contract.items import EventData, RemoteItem, Window
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.services.connections import add_connection, calendar_rows, set_calendar
from sync.services.practices import add_practitioner, create_practice
from sync.store.model import Appointment, AuditEntry, Link, OutboxOp
from sync.store.model import Practice as PracticeRow
from tests.adapters.caldav.fakes.radicale import RadicaleServer
from tests.bot.slack.conftest import SlackClient, slack_settings
from tests.conftest import drop_schema, make_settings
from tests.fakes.slack import FakeSlack

#: Half-hour offset and southern-hemisphere DST: a wall-time or UTC-vs-zone mix-up cannot hide here
#: (in London it would, for half the year).
TZ = "Australia/Adelaide"
ZONE = ZoneInfo(TZ)


def clinic_day() -> date:
    """The coming Tuesday (1 to 7 days ahead): a working day near the real date, so the sync
    window, the outbox's due times and Radicale all agree with the frozen clinic clock."""
    today = datetime.now(ZONE).date()
    return today + timedelta(days=(1 - today.weekday()) % 7 or 7)


DAY = clinic_day()
#: The clinic's frozen clock: 07:00 on DAY in the practice's zone.
NOW = datetime.combine(DAY, time(7), ZONE).astimezone(UTC)


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), ZONE)


def booking(uid: str, start: datetime, minutes: int, client: str, service: str = "Physio") -> EventData:
    """A booking as the booking system writes it to the source calendar."""
    return EventData(
        uid=uid,
        summary=f"{service}: {client}",
        start=start,
        end=start + timedelta(minutes=minutes),
        tzid=TZ,
        client_name=client,
        service=service,
    )


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with RadicaleServer(tmp_path_factory.mktemp("radicale-e2e"), auth="none") as server:
        yield server


def e2e_settings(backend: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a fresh database; loopback CalDAV allowed, polling off (syncs are requested)."""
    values: dict[str, Any] = {"allow_private_urls": True, "sync_poll_seconds": 0}
    values.update(overrides)
    return make_settings(backend, tmp_path, **values)


@dataclass
class Practice:
    """The practice wired to Radicale, and what the tests need to look at it."""

    core: Core
    radicale: RadicaleServer
    user: str
    practice_id: int
    practitioner_id: int
    connection_id: int
    source_id: int
    mirror_id: int
    source_url: str
    mirror_url: str

    def provider(self, url: str) -> Any:
        info = ConnectionInfo(
            provider="caldav",
            account=self.user,
            config={"url": url},
            credentials={"username": self.user, "password": "unused"},
        )
        return open_calendar(info, url, self.core.settings)

    async def events(self, url: str) -> list[RemoteItem]:
        """Everything on one Radicale calendar around DAY, read back through the real adapter."""
        provider = self.provider(url)
        try:
            found = await provider.changes(None, Window(NOW - timedelta(days=2), NOW + timedelta(days=14)))
        finally:
            await provider.aclose()
        return sorted(found.items, key=lambda i: i.event.start)

    async def put_booking(self, event: EventData) -> None:
        """PUT one new resource on the source calendar, as a booking system does."""
        async with self.radicale.client(self.user) as client:
            response = await client.put(
                self.source_url + resource_name(event.uid),
                content=serialize_calendar([event]).encode(),
                headers={"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"},
            )
        assert response.status_code == 201, response.text

    async def sync(self) -> None:
        """Request a sync through the server's sync queue and wait for it and the outbox to finish."""
        queue = self.core.services.sync_queue
        queue.request(self.connection_id, reason="e2e")
        await queue.drain()
        await self.outbox_settled()

    async def outbox_settled(self, timeout: float = 20.0) -> None:
        """Wait until the server's outbox loop has performed every queued remote write."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with self.core.store.session() as s:
                pending = await s.scalar(select(func.count()).select_from(OutboxOp).where(OutboxOp.status == "pending"))
                failed = (await s.scalars(select(OutboxOp.last_error).where(OutboxOp.status == "failed"))).all()
            assert not failed, f"outbox ops failed: {failed}"
            if not pending:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{pending} outbox ops still pending")
            await asyncio.sleep(0.05)

    async def appointment(self, uid: str) -> Appointment:
        """The appointment imported from the source resource of booking `uid`."""
        async with self.core.store.session() as s:
            appt = await s.scalar(
                select(Appointment)
                .join(Link, Link.appointment_id == Appointment.id)
                .where(Link.calendar_id == self.source_id, Link.remote_id == resource_name(uid))
            )
        assert appt is not None, f"booking {uid} was not imported"
        return appt

    async def audit(self, action: str) -> list[AuditEntry]:
        async with self.core.store.session() as s:
            return list(
                (await s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq))).all()
            )

    async def practices(self) -> list[tuple[str, str | None, str | None]]:
        """(name, Slack team, Teams tenant) of every practice."""
        async with self.core.store.session() as s:
            rows = (await s.scalars(select(PracticeRow).order_by(PracticeRow.id))).all()
        return [(p.name, p.slack_team_id, p.teams_tenant_id) for p in rows]

    async def sync_history(self) -> list[str]:
        """The audit trail of appointment and sync changes, oldest first (setup entries left out)."""
        async with self.core.store.session() as s:
            actions = (await s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))).all()
        return [a for a in actions if a.startswith(("appointment.", "sync."))]


async def until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait for an async or plain predicate to hold."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def connect_practice(core: Core, radicale: RadicaleServer) -> Practice:
    """A practice set up as the README says (practice create, practitioner add, connection add,
    calendar set), connected to two fresh Radicale calendars; chat binds to it on first contact."""
    core.clock = lambda: NOW
    user = f"clinic-{uuid.uuid4().hex[:8]}"
    source_url = await radicale.make_calendar(user, "bookings", display_name="Bookings")
    mirror_url = await radicale.make_calendar(user, "dr-lee", display_name="Dr Lee")
    async with core.store.session() as s:  # as `clinicbot practice create` and `practitioner add` do
        practice = await create_practice(s, "Lee Clinic", TZ, actor="cli:e2e")
        lee = await add_practitioner(s, practice, "Dr Lee", email=None, tz=None, actor="cli:e2e")
        practice_id, lee_id = practice.id, lee.id
    added = await add_connection(
        core,
        "caldav",
        radicale.base_url + "/",
        username=user,
        password="unused",
        practitioner="dr-lee",
        actor="cli:e2e",
    )
    by_url = {row["url"]: row["id"] for row in await calendar_rows(core)}
    assert set(by_url) == {source_url, mirror_url}, by_url
    await set_calendar(core, by_url[source_url], role="source", actor="cli:e2e")
    await set_calendar(core, by_url[mirror_url], role="mirror", projection="initials", actor="cli:e2e")
    return Practice(
        core,
        radicale,
        user,
        practice_id,
        lee_id,
        added.connection_id,
        by_url[source_url],
        by_url[mirror_url],
        source_url,
        mirror_url,
    )


@pytest.fixture
async def e2e_core(backend: str, tmp_path: Path) -> AsyncIterator[Core]:
    """A Core on a freshly migrated database that allows loopback CalDAV."""
    from sync.store.migrate import upgrade

    settings = e2e_settings(backend, tmp_path)
    core = open_core(settings)
    await upgrade(core.store)
    try:
        yield core
    finally:
        await core.close()
        await drop_schema(settings)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """Slack's Web API, on loopback."""
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def clinic(e2e_core: Any, radicale: RadicaleServer) -> Practice:
    """A practice whose source and mirror calendars live on the real Radicale (a test module may define its own)."""
    return await connect_practice(e2e_core, radicale)


@pytest.fixture
async def slack(clinic: Practice, fake_slack: FakeSlack) -> AsyncIterator[SlackClient]:
    """The real server (sync worker included) with Slack pointed at the fake Web API."""
    app = build_app(slack_settings(clinic.core.settings, fake_slack), core=clinic.core)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            url = str(server.make_url("")).rstrip("/")
            yield SlackClient(url, session, fake_slack, app[SLACK], clinic.core, clinic)  # type: ignore[arg-type]
    finally:
        await server.close()
