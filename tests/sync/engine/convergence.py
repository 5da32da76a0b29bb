"""What the convergence machines share (tests/sync/engine/test_convergence*.py, and the Nylas one).

`ConvergenceMachine` is one machine over a practice made by `make_clinic`, on a copy of a migrated
SQLite file: staff change visits in chat, the bot syncs a calendar and runs its outbox, sometimes
crashing at a checkpoint (a crash restarts the process on the same database and remote servers),
and the audit chain holds after every step. A run ends settled and checked. Each machine says what
its source and mirrors are: the calendars it syncs (`calendars`), the factory a restarted process
uses (`provider_factory`), how it settles (`_settle`) and what it checks (`_check`), with the
shared halves `settle_rounds`, `check_appointments` and `check_copies`.

`CalendarSourceMachine` adds the rules of a source calendar held in memory: bookings created,
moved, renamed and cancelled on it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select

from sync.boot import open_core
from sync.contract import CalendarProvider
from sync.contract.items import EventData, RemoteItem
from sync.engine.outbox import OutboxConfig, run_once, run_until_idle
from sync.engine.plan import CalendarView, Policy
from sync.engine.reconcile import desired_copy
from sync.engine.run import sync_connection
from sync.engine.snapshots import calendar_view, canonical
from sync.engine.subscriber import register
from sync.runtime.core import Core
from sync.services import appointments as services
from sync.services.conflicts import list_conflicts, resolve_conflict
from sync.store import audit
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Calendar, Connection, OutboxOp
from tests.conftest import make_settings
from tests.sync.helpers import NOW, Clinic, booking

CHECKPOINTS = ["outbox.claimed", "outbox.remote_done", "outbox.recorded", "sync.fetched", "sync.applied"]
CFG = OutboxConfig(max_attempts=50, base_delay=1.0, max_delay=60.0)
_TEMPLATE: dict[str, Path] = {}


class Crash(Exception):
    """A simulated process crash."""


def _template_db() -> Path:
    """Migrate once; each example starts from a copy of the migrated file."""
    if "db" not in _TEMPLATE:
        d = Path(tempfile.mkdtemp(prefix="cb-template-"))
        s = make_settings("sqlite", d)

        async def go() -> None:
            core = open_core(s)
            await upgrade(core.store)
            await core.close()
        asyncio.run(go())
        _TEMPLATE["db"] = d / "clinicbot.sqlite3"
    return _TEMPLATE["db"]


class ConvergenceMachine(RuleBasedStateMachine):
    """The shared machine; a subclass adds its `@initialize` (which sets `clinic`) and its world's rules."""

    prefix = "cb-conv-"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix=self.prefix))
        shutil.copy(_template_db(), self.dir / "clinicbot.sqlite3")
        self.settings = make_settings("sqlite", self.dir)
        self.core: Core = open_core(self.settings)
        register(self.core)
        self.clinic: Clinic

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def calendars(self) -> list[str]:
        """The connections by name, the source first."""
        return sorted(self.clinic.connections, key=lambda n: (n != "source", n))

    def provider_factory(self) -> Callable[[Connection, Calendar], CalendarProvider]:
        """What opens a calendar's provider (a restarted process gets it again)."""
        return self.clinic.factory

    def teardown(self) -> None:
        try:
            if hasattr(self, "clinic"):
                # Every run ends settled and checked, whatever the steps were.
                self.run(self._settle())
                self.run(self._check())
        finally:
            self._close()

    def _close(self) -> None:
        self.run(self.core.close())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- staff in chat ------------------------------------------------------------------------------
    @rule(data=st.data(), cancel=st.booleans(), shift=st.integers(1, 5))
    def chat_change(self, data: st.DataObject, cancel: bool, shift: int) -> None:
        async def go() -> None:
            async with self.core.store.session() as s:
                ids = list((await s.scalars(select(Appointment.id).where(
                    Appointment.status.in_(services.ACTIVE_STATUSES)).order_by(Appointment.id))).all())
                if not ids:
                    return
                appt = await s.get(Appointment, data.draw(st.sampled_from(ids)))
                assert appt is not None
                if cancel:
                    await services.cancel(s, self.core.bus, appt, "test", "slack:T/U")
                else:
                    await services.reschedule(s, self.core.bus, appt, appt.start + timedelta(hours=shift), None,
                                              "slack:T/U", allow_overlap=True)
        self.run(go())

    # ---- the bot works, and sometimes crashes ----------------------------------------------------------
    @rule(data=st.data(), crash=st.sampled_from([None, *CHECKPOINTS]))
    def sync(self, data: st.DataObject, crash: str | None) -> None:
        self._sync(data.draw(st.sampled_from(self.calendars())), crash)

    @rule(crash=st.sampled_from([None, *CHECKPOINTS]), advance=st.integers(0, 700))
    def outbox(self, crash: str | None, advance: int) -> None:
        self.clinic.now += timedelta(seconds=advance)
        self._arm(crash)
        try:
            self.run(run_once(self.core, config=CFG))
        except Crash:
            self._restart()
        finally:
            self.core.services.fault_injector = None

    def _sync(self, which: str, crash: str | None) -> None:
        self._arm(crash)
        try:
            self.run(sync_connection(self.core, self.clinic.connections[which]))
        except Crash:
            self._restart()
        finally:
            self.core.services.fault_injector = None

    def _arm(self, label: str | None) -> None:
        if label is None:
            return

        def hook(at: str) -> None:
            if at == label:
                raise Crash(at)
        self.core.services.fault_injector = hook

    def _restart(self) -> None:
        """A fresh process on the same database: new Core, same remote servers."""
        self.run(self.core.close())
        self.core = open_core(self.settings)
        self.core.clock = self.clinic.clock
        self.core.services.provider_factory = self.provider_factory()
        self.clinic.core = self.core
        register(self.core)

    # ---- settle and check ------------------------------------------------------------------------------
    @invariant()
    def audit_chain_holds(self) -> None:
        async def go() -> None:
            async with self.core.store.session() as s:
                assert (await audit.verify(s))[1] is None
        self.run(go())

    @rule()
    def settle_and_check(self) -> None:
        self.run(self._settle())
        self.run(self._check())

    async def _settle(self) -> None:
        raise NotImplementedError

    async def _check(self) -> None:
        raise NotImplementedError

    async def settle_rounds(self, rounds: int, *, quiet_mirrors: bool = True) -> None:
        """Sync every calendar, keep the booking in each conflict, run the outbox; until nothing changes (at
        most `rounds` times). With `quiet_mirrors`, one more sync of each mirror then finds nothing to fix."""
        async def sleep(seconds: float) -> None:
            self.clinic.now += timedelta(seconds=seconds)
        for _ in range(rounds):
            changed = 0
            for name in self.calendars():
                report = await sync_connection(self.core, self.clinic.connections[name])
                assert report.failed == 0
                changed += report.created + report.updated + report.deleted + report.conflicts + report.backfilled
            for conflict in await list_conflicts(self.core):
                changed += 1
                await resolve_conflict(self.core, conflict.link_id, "keep_booking", "slack:T/U")
            changed += (await run_until_idle(self.core, sleep=sleep, config=CFG)).processed
            if not changed:
                break
        if quiet_mirrors:
            for name in self.calendars()[1:]:
                report = await sync_connection(self.core, self.clinic.connections[name])
                assert report.conflicts == 0 and report.failed == 0

    async def check_appointments(self, expected: Mapping[str, EventData | None]) -> dict[str, Appointment]:
        """One appointment per booking, with the booking's times and status (by source uid); no failed write.
        `expected`: each booking as its source holds it (None: gone). The appointments by source uid."""
        async with self.core.store.session() as s:
            rows = list((await s.scalars(select(Appointment))).all())
            failed = (await s.scalars(select(OutboxOp).where(OutboxOp.status == "failed"))).all()
            assert not failed, [(o.op, o.last_error) for o in failed]
            assert (await audit.verify(s))[1] is None
        appts = {a.source_uid: a for a in rows}
        assert len(appts) == len(rows), "a booking became two appointments"
        for uid, event in expected.items():
            appt = appts.get(uid)
            if event is None or event.status == "cancelled":
                assert appt is None or appt.status == "cancelled", uid
            else:
                assert appt is not None and appt.status == "confirmed", uid
                assert (appt.start, appt.end) == (event.start, event.end), uid
        return appts

    async def view(self, name: str) -> CalendarView:
        """How the sync sees calendar `name` now (its role, projection, sync switches)."""
        async with self.core.store.session() as s:
            cal = await s.get(Calendar, self.clinic.calendars[name])
            conn = await s.get(Connection, self.clinic.connections[name])
            assert cal is not None and conn is not None
            return calendar_view(cal, conn)

    @staticmethod
    def check_copies(name: str, items: Iterable[RemoteItem], appts: Iterable[Appointment], view: CalendarView,
                     policy: Policy, seen: Callable[[EventData], Any] = lambda ev: ev.content_hash()) -> None:
        """Each appointment's copy on mirror `name` exactly once, as the projection makes it (compared by
        `seen`), or none where it wants none; no copy without an appointment."""
        items = list(items)
        ids = [i.event.clinicbot_id for i in items]
        assert len(ids) == len(set(ids)), f"a copy is duplicated on {name}: {ids}"
        by_id = {i.event.clinicbot_id: i for i in items}
        for appt in appts:
            want = desired_copy(canonical(appt), view, policy)
            have = by_id.pop(f"A-{appt.id}", None)
            if want is None or (appt.status == "cancelled" and have is None):
                assert have is None, (name, appt.id)  # (a cancelled visit's copy is marked cancelled, or gone)
            elif policy.deleted_mirror == "leave" and have is None:
                continue  # deleted by hand, and the practice leaves such copies deleted
            else:
                assert have is not None, (name, appt.id)
                assert seen(have.event) == seen(want), (name, appt.id, have.event, want)
        assert not by_id, f"copies without an appointment on {name}: {sorted(by_id)}"


class CalendarSourceMachine(ConvergenceMachine):
    """A ConvergenceMachine whose source is a calendar in memory (`clinic.servers["source"]`)."""

    def __init__(self) -> None:
        super().__init__()
        self.uids: list[str] = []
        self.injected = 0

    @rule(day=st.integers(0, 20), hour=st.integers(8, 17), minutes=st.sampled_from([15, 30, 60]))
    def source_create(self, day: int, hour: int, minutes: int) -> None:
        uid = f"bk{len(self.uids)}"
        self.uids.append(uid)
        start = NOW.replace(hour=hour, minute=0) + timedelta(days=day)
        self.clinic.servers["source"].put(booking(uid, start, minutes, client_name=f"Client {uid}"))

    @precondition(lambda self: self.uids)
    @rule(data=st.data(), shift=st.integers(-3, 3), rename=st.booleans())
    def source_edit(self, data: st.DataObject, shift: int, rename: bool) -> None:
        src = self.clinic.servers["source"]
        uid = data.draw(st.sampled_from(self.uids))
        if uid not in src.items:
            return
        ev = src.items[uid].event
        changes: dict[str, Any] = {"start": ev.start + timedelta(hours=shift), "end": ev.end + timedelta(hours=shift)}
        if rename:
            changes["service"] = "Massage" if ev.service == "Physio" else "Physio"
        src.put(ev.with_changes(**changes), uid)

    @precondition(lambda self: self.uids)
    @rule(data=st.data(), hard=st.booleans())
    def source_cancel(self, data: st.DataObject, hard: bool) -> None:
        src = self.clinic.servers["source"]
        uid = data.draw(st.sampled_from(self.uids))
        if uid in src.items:
            if hard:
                src.remove(uid)
            else:
                src.put(src.items[uid].event.with_changes(status="cancelled"), uid)

    async def check_source(self) -> dict[str, Appointment]:
        """The appointments against the source's bookings (check_appointments)."""
        src = self.clinic.servers["source"]
        items = {uid: src.items.get(uid) for uid in self.uids}
        return await self.check_appointments({uid: i.event if i else None for uid, i in items.items()})
