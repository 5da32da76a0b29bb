"""The convergence property: random edits on the source and the mirrors, chat changes, provider
errors and crashes between any two steps, a mirror added mid-run, role changes and sync turned off
and on, under each mirror_edits policy; after settling, every appointment is on each active mirror
exactly once with its projected content, nothing is lost or duplicated, and the audit chain verifies.

HYPOTHESIS_CONVERGENCE_EXAMPLES raises the example count (default 15).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import select

from sync.boot import open_core
from sync.contract import ProviderError, RateLimited, Unavailable, WrongEtag
from sync.engine.outbox import OutboxConfig, run_once, run_until_idle
from sync.engine.plan import MIRROR_EDITS, Policy
from sync.engine.reconcile import desired_copy
from sync.engine.run import sync_connection
from sync.engine.snapshots import calendar_view, canonical
from sync.engine.subscriber import register
from sync.runtime.core import Core
from sync.services import appointments as services
from sync.services.conflicts import list_conflicts, resolve_conflict
from sync.services.connections import set_calendar, set_sync
from sync.services.mirror_edits import set_mirror_edits
from sync.store import audit
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Calendar, Connection, OutboxOp
from tests.conftest import make_settings
from tests.sync.helpers import NOW, Clinic, booking, make_clinic

EXAMPLES = int(os.environ.get("HYPOTHESIS_CONVERGENCE_EXAMPLES", "15"))
CHECKPOINTS = ["outbox.claimed", "outbox.remote_done", "outbox.recorded", "sync.fetched", "sync.applied"]
OPS = ["changes", "create", "update", "delete", "get"]
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


errors = st.sampled_from(["412", "429", "503", "timeout"])


def _error(kind: str, retry_after: float) -> ProviderError:
    if kind == "412":
        return WrongEtag("412")
    if kind == "429":
        return RateLimited("429", retry_after=retry_after)
    return Unavailable("timeout" if kind == "timeout" else "503")


class Convergence(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="cb-conv-"))
        shutil.copy(_template_db(), self.dir / "clinicbot.sqlite3")
        self.settings = make_settings("sqlite", self.dir)
        self.core: Core = open_core(self.settings)
        register(self.core)
        self.clinic: Clinic
        self.uids: list[str] = []
        self.injected = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @initialize(cancel_mode=st.sampled_from(["cancel", "delete"]), deleted=st.sampled_from(["recreate", "leave"]),
                edits=st.sampled_from(MIRROR_EDITS))
    def setup(self, cancel_mode: str, deleted: str, edits: str) -> None:
        self.clinic = self.run(make_clinic(self.core, {"cancel_mode": cancel_mode, "deleted_mirror": deleted},
                                           mirrors=2))
        self.run(self._set_projection("mirror1", "full"))
        self.run(set_mirror_edits(self.core, self.clinic.practice_id, edits, actor="cli:test"))
        self.policy = Policy.from_settings({"cancel_mode": cancel_mode, "deleted_mirror": deleted}, edits)

    async def _set_projection(self, name: str, projection: str) -> None:
        async with self.core.store.session() as s:
            cal = await s.get(Calendar, self.clinic.calendars[name])
            assert cal is not None
            cal.projection = projection

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

    # ---- the world changes ------------------------------------------------------------------
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

    @rule(data=st.data(), delete=st.booleans())
    def mirror_hand_edit(self, data: st.DataObject, delete: bool) -> None:
        mirror = data.draw(st.sampled_from(self._calendars()[1:]))
        srv = self.clinic.servers[mirror]
        if not srv.items:
            return
        rid = data.draw(st.sampled_from(sorted(srv.items)))
        if delete:
            srv.remove(rid)
        else:
            ev = srv.items[rid].event
            srv.put(ev.with_changes(start=ev.start + timedelta(minutes=30), end=ev.end + timedelta(minutes=30)), rid)

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

    # ---- the practice changes its calendars ------------------------------------------------
    def _calendars(self) -> list[str]:
        return sorted(self.clinic.connections, key=lambda n: (n != "source", n))

    @precondition(lambda self: "mirror2" not in self.clinic.connections)
    @rule()
    def mirror_added(self) -> None:
        """A calendar connected mid-run (as CalDAV's connect leaves it: busy), then made a mirror."""
        async def go() -> None:
            cal = await self.clinic.add_calendar("mirror2", "busy")
            await set_calendar(self.core, cal, role="mirror", actor="cli:test")
        self.run(go())

    @rule(data=st.data())
    def role_changed(self, data: st.DataObject) -> None:
        """A mirror stops being one (busy), or a busy calendar becomes a mirror again."""
        name = data.draw(st.sampled_from(self._calendars()[1:]))

        async def go() -> None:
            async with self.core.store.session() as s:
                role = await s.scalar(select(Calendar.role).where(Calendar.id == self.clinic.calendars[name]))
            await set_calendar(self.core, self.clinic.calendars[name], role="busy" if role == "mirror" else "mirror",
                               actor="cli:test")
        self.run(go())

    @rule(data=st.data(), whole_connection=st.booleans())
    def sync_switched(self, data: st.DataObject, whole_connection: bool) -> None:
        """Sync of a mirror (its calendar, or its whole connection) is turned off, or back on."""
        name = data.draw(st.sampled_from(self._calendars()[1:]))

        async def go() -> None:
            async with self.core.store.session() as s:
                cal = await s.get(Calendar, self.clinic.calendars[name])
                conn = await s.get(Connection, self.clinic.connections[name])
                assert cal is not None and conn is not None
                on = cal.sync_enabled and conn.sync_enabled
            if whole_connection:
                await set_sync(self.core, self.clinic.practice_id, enabled=not on, name=name, actor="cli:test")
            else:
                await set_sync(self.core, self.clinic.practice_id, enabled=not on,
                               calendar_ids=[self.clinic.calendars[name]], actor="cli:test")
        self.run(go())

    # ---- faults ------------------------------------------------------------------------------
    @precondition(lambda self: self.injected < 12)
    @rule(data=st.data(), op=st.sampled_from(OPS), kind=errors, retry_after=st.floats(0, 600))
    def provider_error(self, data: st.DataObject, op: str, kind: str, retry_after: float) -> None:
        server = data.draw(st.sampled_from(self._calendars()))
        self.injected += 1
        self.clinic.servers[server].fail_next(op, _error(kind, retry_after))

    @rule()
    def expire_cursor(self) -> None:
        self.clinic.servers["source"].expire_cursors()

    # ---- the bot works, and sometimes crashes ----------------------------------------------------
    @rule(data=st.data(), crash=st.sampled_from([None, *CHECKPOINTS]))
    def sync(self, data: st.DataObject, crash: str | None) -> None:
        which = data.draw(st.sampled_from(self._calendars()))
        self._arm(crash)
        try:
            self.run(sync_connection(self.core, self.clinic.connections[which]))
        except Crash:
            self._restart()
        finally:
            self.core.services.fault_injector = None

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
        self.core.services.provider_factory = self.clinic.factory
        self.clinic.core = self.core
        register(self.core)

    # ---- settle and check ------------------------------------------------------------------------
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
        async def sleep(seconds: float) -> None:
            self.clinic.now += timedelta(seconds=seconds)
        for server in self.clinic.servers.values():
            server.failures.clear()
        for _ in range(4):
            changed = 0
            for name in self._calendars():
                report = await sync_connection(self.core, self.clinic.connections[name])
                assert report.failed == 0
                changed += report.created + report.updated + report.deleted + report.conflicts + report.backfilled
            for conflict in await list_conflicts(self.core):
                changed += 1
                await resolve_conflict(self.core, conflict.link_id, "keep_booking", "slack:T/U")
            changed += (await run_until_idle(self.core, sleep=sleep, config=CFG)).processed
            if not changed:
                break
        for name in self._calendars()[1:]:
            report = await sync_connection(self.core, self.clinic.connections[name])
            assert report.conflicts == 0 and report.failed == 0

    async def _check(self) -> None:
        src = self.clinic.servers["source"]
        async with self.core.store.session() as s:
            appts = {a.source_uid: a for a in (await s.scalars(select(Appointment))).all()}
            assert len(appts) == len((await s.scalars(select(Appointment))).all())  # one per booking
            failed = (await s.scalars(select(OutboxOp).where(OutboxOp.status == "failed"))).all()
            assert not failed, [(o.op, o.last_error) for o in failed]
            policy = self.policy
            views = {}
            for name in self._calendars()[1:]:
                cal = await s.get(Calendar, self.clinic.calendars[name])
                conn = await s.get(Connection, self.clinic.connections[name])
                assert cal is not None and conn is not None
                view = calendar_view(cal, conn)
                if view.role == "mirror" and view.sync_enabled:  # a busy or paused calendar keeps what it had
                    views[name] = view
        for uid in self.uids:
            item = src.items.get(uid)
            appt = appts.get(uid)
            if item is None or item.event.status == "cancelled":
                assert appt is None or appt.status == "cancelled", uid
            else:
                assert appt is not None and appt.status == "confirmed", uid
                assert (appt.start, appt.end) == (item.event.start, item.event.end), uid
        for name, view in views.items():
            srv = self.clinic.servers[name]
            ids = [i.event.clinicbot_id for i in srv.items.values()]
            assert len(ids) == len(set(ids)), "a copy is duplicated"
            by_id = {i.event.clinicbot_id: i for i in srv.items.values()}
            for appt in appts.values():
                want = desired_copy(canonical(appt), view, policy)
                have = by_id.pop(f"A-{appt.id}", None)
                if want is None or (appt.status == "cancelled" and have is None):
                    assert have is None, (name, appt.id)
                elif policy.deleted_mirror == "leave" and have is None:
                    continue  # deleted by hand, and the practice leaves such copies deleted
                else:
                    assert have is not None, (name, appt.id)
                    assert have.event.content_hash() == want.content_hash(), (name, appt.id)
            assert not by_id, f"copies without an appointment on {name}"


# Under CI the examples are derandomized so that a run is reproducible; locally they stay random
# and keep searching (HYPOTHESIS_CONVERGENCE_EXAMPLES raises the count). This machine found the
# "chat cancel undone by an older source edit while the source write is throttled" bug, fixed by
# the source_pending link state (sync/engine/plan.py).
Convergence.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=15, deadline=None,
    derandomize=os.environ.get("CI", "").lower() in ("1", "true", "yes"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestConvergence = Convergence.TestCase
