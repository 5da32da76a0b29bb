"""Scale-out: three `clinicbot serve` processes on one PostgreSQL schema, used the way a load
balancer would use them. Chat commands go round-robin across the three, the booking system keeps
changing its CalDAV calendar (Radicale) while every replica polls it, 60 reminders come due, and
the process that runs the scheduler is killed with SIGKILL half-way through them.

Then: every reminder was delivered exactly once, another replica took over within the promised
10 seconds (the measured figure is printed), every chat reschedule reached the source calendar,
every change the booking system made was imported, and the mirror calendar converged on exactly
the practice's appointments.

Not covered here: provider webhooks (CalDAV has none; the Google and Graph webhook routes are
tested in one process, tests/bot/test_webhooks.py and tests/bot/test_graph_webhooks.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from adapters.caldav import open_calendar
from adapters.caldav.resources import resource_name
from adapters.kit.ical import serialize_calendar
from sync.boot import open_core
from sync.contract import ConnectionInfo
from sync.contract.items import EventData, RemoteItem, Window
from sync.notify.reminders import plan_upcoming
from sync.runtime.core import Core
from sync.services.connections import add_connection, calendar_rows, set_calendar
from sync.services.practices import add_practitioner, create_practice
from sync.store.migrate import upgrade
from sync.store.model import Appointment, ReminderLedger
from tests.adapters.caldav.fakes.radicale import RadicaleServer
from tests.conftest import drop_schema
from tests.e2e.conftest import e2e_settings
from tests.fakes.bot_connector import FakeBotConnector
from tests.fakes.recorder import Recorder
from tests.servers import REPO, free_port

LEADER_LINE = "this process now runs the scheduler"
REMINDERS = 60
MOVES = 6
LATE_BOOKINGS = 4
#: What the README promises: another replica takes over the scheduler within seconds.
TAKEOVER_LIMIT = 10.0


@pytest.fixture
def connector() -> Iterator[FakeBotConnector]:
    """Where the replicas send their Teams replies (authentication off: the local playground's setup)."""
    with FakeBotConnector(app_id="", app_password=None) as fake:
        yield fake


class Clinic:
    """The practice on Radicale, seen from the test (the booking system's side and the database's)."""

    def __init__(self, core: Core, radicale: RadicaleServer, user: str, source: str, mirror: str) -> None:
        self.core, self.radicale, self.user, self.source, self.mirror = core, radicale, user, source, mirror

    async def book(self, uid: str, start: datetime, minutes: int = 20) -> None:
        event = EventData(uid=uid, summary=f"Check-up: Client {uid}", start=start,
                          end=start + timedelta(minutes=minutes), tzid="UTC", client_name=f"Client {uid}",
                          service="Check-up")  # fmt: skip
        async with self.radicale.client(self.user) as client:
            response = await client.put(
                self.source + resource_name(uid), content=serialize_calendar([event]).encode(),
                headers={"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"},
            )  # fmt: skip
        assert response.status_code == 201, response.text

    async def events(self, url: str) -> list[RemoteItem]:
        info = ConnectionInfo(provider="caldav", account=self.user, config={"url": url},
                              credentials={"username": self.user, "password": "unused"})  # fmt: skip
        provider = open_calendar(info, url, self.core.settings)
        now = datetime.now(UTC)
        try:
            found = await provider.changes(None, Window(now - timedelta(days=1), now + timedelta(days=7)))
        finally:
            await provider.aclose()
        return found.items

    async def appointments(self) -> dict[str, Appointment]:
        async with self.core.store.session() as s:
            rows = (await s.scalars(select(Appointment).where(Appointment.status == "confirmed"))).all()
        return {str(a.source_uid): a for a in rows}


def _log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


async def _healthy(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


async def _until(check: Any, timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, why
        await asyncio.sleep(0.2)


def _message(service_url: str, text: str) -> dict[str, Any]:
    return {
        "type": "message", "id": uuid.uuid4().hex[:12], "text": text, "channelId": "msteams",
        "serviceUrl": service_url, "from": {"id": "29:front-desk", "name": "Front Desk"},
        "conversation": {"id": "a:front-desk", "conversationType": "personal", "tenantId": "tenant-1"},
        "recipient": {"id": "28:clinicbot", "name": "clinicbot"}, "channelData": {"tenant": {"id": "tenant-1"}},
    }  # fmt: skip


@pytest.mark.postgres
@pytest.mark.slow
async def test_three_replicas_share_chat_syncs_and_reminders_through_a_leader_kill(
    backend: str, tmp_path: Path, radicale: RadicaleServer, connector: FakeBotConnector
) -> None:
    if backend != "postgres":
        pytest.skip("several replicas need PostgreSQL; on SQLite the server is single-process")
    settings = e2e_settings(backend, tmp_path, sync_poll_seconds=2)
    core = open_core(settings)
    recorder = Recorder()
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        # The practice, as the README sets it up: practice, practitioner, CalDAV connection, roles.
        await upgrade(core.store)
        user = f"scale-{uuid.uuid4().hex[:8]}"
        source = await radicale.make_calendar(user, "bookings", display_name="Bookings")
        mirror = await radicale.make_calendar(user, "dr-lee", display_name="Dr Lee")
        async with core.store.session() as s:
            practice = await create_practice(s, "Scale Clinic", "UTC", actor="cli:test")
            lee = await add_practitioner(s, practice, "Dr Lee", email=None, tz=None, actor="cli:test")
            lee.reminder_prefs = {"offsets_minutes": [5], "quiet_start": None, "followups": False, "agenda_time": None}
        await add_connection(core, "caldav", radicale.base_url + "/", username=user, password="unused",
                             practitioner="dr-lee", actor="cli:test")  # fmt: skip
        by_url = {row["url"]: row["id"] for row in await calendar_rows(core)}
        await set_calendar(core, by_url[source], role="source", actor="cli:test")
        await set_calendar(core, by_url[mirror], role="mirror", projection="initials", actor="cli:test")
        clinic = Clinic(core, radicale, user, source, mirror)

        # Three replicas; each polls the connection every 2 s and runs the outbox.
        recorder_url = await recorder.start()
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
            "CLINICBOT_DATABASE_URL": settings.database_url, "CLINICBOT_DATABASE_SCHEMA": settings.database_schema,
            "CLINICBOT_SECRET_KEY": str(settings.secret_key), "CLINICBOT_ALLOW_PRIVATE_URLS": "true",
            "CLINICBOT_SYNC_POLL_SECONDS": "2", "CLINICBOT_AUTO_MIGRATE": "false",
            "CLINICBOT_TEST_RECORDER_URL": recorder_url, "PYTHONPATH": str(REPO),
        }  # fmt: skip
        ports = [free_port() for _ in range(3)]
        for n, port in enumerate(ports):
            log_path = tmp_path / f"replica-{n}.log"
            with log_path.open("wb") as out:
                procs.append((subprocess.Popen(
                    [sys.executable, "-m", "tests.fakes.serve_with_recorder", "--port", str(port)],
                    cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                ), log_path))  # fmt: skip

        async def all_up() -> bool:
            assert all(p.poll() is None for p, _ in procs), [_log(path)[-2000:] for _, path in procs]
            return all([await _healthy(p) for p in ports])

        await _until(all_up, 120, "the replicas did not start")

        # The booking system fills the day: 60 visits whose 5-minute reminders fall due within 40 s
        # (a little later, so the replicas' polls have imported them), and 6 visits tomorrow to move.
        first_due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
        for i in range(REMINDERS):
            await clinic.book(f"soon-{i}", first_due + timedelta(minutes=5, seconds=40 * i / REMINDERS))
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
        for i in range(MOVES):
            await clinic.book(f"move-{i}", tomorrow + timedelta(minutes=30 * i))

        async def imported() -> bool:
            return len(await clinic.appointments()) == REMINDERS + MOVES

        await _until(imported, 30, "the replicas' polls did not import the bookings")
        async with core.store.session() as s:
            await plan_upcoming(s, datetime.now(UTC))  # what the scheduler's planning job does too

        # Chat, round-robin: the first message makes the front desk the practice's admin.
        turn = iter(range(10_000))

        async def say(text: str) -> dict[str, Any]:
            port = ports[next(turn) % len(ports)]
            message = _message(connector.service_url, text)
            async with httpx.AsyncClient(timeout=30) as client:
                reply = await client.post(f"http://127.0.0.1:{port}/api/messages", json=message)
            assert reply.status_code in (200, 201), reply.text
            # The turn's own answer (the admin may also get proactive notices, such as alarms, meanwhile).
            answers = [a for a in connector.recorded.activities("a:front-desk") if a.get("replyToId") == message["id"]]
            assert len(answers) == 1, answers
            return answers[-1]["attachments"][0]["content"]  # type: ignore[no-any-return]

        assert "Client soon-0" in json.dumps(await say("today"))
        appts = await clinic.appointments()
        moved_to: dict[str, datetime] = {}
        for i in range(MOVES):
            target = tomorrow + timedelta(hours=6, minutes=30 * i)
            card = json.dumps(await say(f"reschedule {appts[f'move-{i}'].ref} {target:%Y-%m-%dT%H:%M}"))
            assert "Moved" in card, card
            moved_to[f"move-{i}"] = target
            if i == MOVES // 2:
                # Meanwhile the booking system takes more bookings, picked up by whichever replica polls.
                for j in range(LATE_BOOKINGS):
                    await clinic.book(f"late-{j}", tomorrow + timedelta(hours=3, minutes=30 * j))

        # Half the reminders delivered, then SIGKILL whichever replica runs the scheduler.
        async def half_sent() -> bool:
            return len(recorder.deliveries) >= REMINDERS // 2

        await _until(half_sent, 90, f"only {len(recorder.deliveries)} reminders were sent")
        leaders = [(proc, path) for proc, path in procs if LEADER_LINE in _log(path)]
        assert len(leaders) == 1, "exactly one replica runs the scheduler"
        leader, leader_log = leaders[0]
        leader.send_signal(signal.SIGKILL)
        killed_at = time.time()
        leader.wait(timeout=10)
        survivors = [(p, path) for p, path in procs if p is not leader]

        async def taken_over() -> bool:
            return any(LEADER_LINE in _log(path) for _, path in survivors)

        await _until(taken_over, TAKEOVER_LIMIT + 20, "no replica took over the scheduler")
        takeover = time.time() - killed_at
        before_kill = [d for d in recorder.deliveries if d["received_at"] <= killed_at]

        async def all_sent() -> bool:
            return len(recorder.deliveries) >= REMINDERS

        await _until(all_sent, 90, f"{len(recorder.deliveries)} of {REMINDERS} reminders delivered")
        first_after = min(d["received_at"] for d in recorder.deliveries[len(before_kill):])
        print(json.dumps({"scale_out": {"replicas": 3, "reminders": REMINDERS, "takeover_s": round(takeover, 2),
                                        "first_reminder_after_kill_s": round(first_after - killed_at, 2)}}))
        assert takeover < TAKEOVER_LIMIT, f"takeover took {takeover:.1f} s"
        keys = recorder.keys()
        assert len(keys) == len(set(keys)) == REMINDERS, "every reminder exactly once"
        async with core.store.session() as s:
            ledger = dict((await s.execute(
                select(ReminderLedger.status, func.count()).group_by(ReminderLedger.status))).tuples().all())
        # Tomorrow's visits have their reminders planned, not yet due; nothing failed or hangs mid-send.
        assert ledger.get("sent") == REMINDERS and set(ledger) <= {"sent", "planned"}, ledger

        # Convergence: chat moves are on the source, late bookings are imported, the mirror matches.
        async def converged() -> bool:
            appts = await clinic.appointments()
            on_source = {i.event.uid: i.event.start for i in await clinic.events(source)}
            on_mirror = sorted(i.event.start for i in await clinic.events(mirror))
            return (
                all(on_source.get(uid) == when for uid, when in moved_to.items())
                and all(appts.get(uid) and appts[uid].start == when for uid, when in moved_to.items())
                and {f"late-{j}" for j in range(LATE_BOOKINGS)} <= set(appts)
                and on_mirror == sorted(a.start for a in appts.values())
            )

        await _until(converged, 60, "the replicas did not converge on the source and mirror calendars")
        assert "Traceback" not in "".join(_log(path) for _, path in survivors)
        assert leader_log.exists()
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        await recorder.stop()
        await core.close()
        await drop_schema(settings)
