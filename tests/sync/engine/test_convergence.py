"""The convergence property: random edits on the source and the mirrors, chat changes, provider
errors and crashes between any two steps, a mirror added mid-run, role changes and sync turned off
and on, under each mirror_edits policy; after settling, every appointment is on each active mirror
exactly once with its projected content, nothing is lost or duplicated, and the audit chain verifies.

HYPOTHESIS_CONVERGENCE_EXAMPLES raises the example count (default 15).
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule
from sqlalchemy import select

from sync.contract import ProviderError, RateLimited, Unavailable, WrongEtag
from sync.engine.plan import MIRROR_EDITS, Policy
from sync.services.connections import set_calendar, set_sync
from sync.services.mirror_edits import set_mirror_edits
from sync.store.model import Calendar, Connection
from tests.sync.engine.convergence import CalendarSourceMachine
from tests.sync.helpers import make_clinic

EXAMPLES = int(os.environ.get("HYPOTHESIS_CONVERGENCE_EXAMPLES", "15"))
OPS = ["changes", "create", "update", "delete", "get"]


errors = st.sampled_from(["412", "429", "503", "timeout"])


def _error(kind: str, retry_after: float) -> ProviderError:
    if kind == "412":
        return WrongEtag("412")
    if kind == "429":
        return RateLimited("429", retry_after=retry_after)
    return Unavailable("timeout" if kind == "timeout" else "503")


class Convergence(CalendarSourceMachine):
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

    # ---- the world changes ------------------------------------------------------------------
    @rule(data=st.data(), delete=st.booleans())
    def mirror_hand_edit(self, data: st.DataObject, delete: bool) -> None:
        mirror = data.draw(st.sampled_from(self.calendars()[1:]))
        srv = self.clinic.servers[mirror]
        if not srv.items:
            return
        rid = data.draw(st.sampled_from(sorted(srv.items)))
        if delete:
            srv.remove(rid)
        else:
            ev = srv.items[rid].event
            srv.put(ev.with_changes(start=ev.start + timedelta(minutes=30), end=ev.end + timedelta(minutes=30)), rid)

    # ---- the practice changes its calendars ------------------------------------------------
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
        name = data.draw(st.sampled_from(self.calendars()[1:]))

        async def go() -> None:
            async with self.core.store.session() as s:
                role = await s.scalar(select(Calendar.role).where(Calendar.id == self.clinic.calendars[name]))
            await set_calendar(self.core, self.clinic.calendars[name], role="busy" if role == "mirror" else "mirror",
                               actor="cli:test")
        self.run(go())

    @rule(data=st.data(), whole_connection=st.booleans())
    def sync_switched(self, data: st.DataObject, whole_connection: bool) -> None:
        """Sync of a mirror (its calendar, or its whole connection) is turned off, or back on."""
        name = data.draw(st.sampled_from(self.calendars()[1:]))

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
        server = data.draw(st.sampled_from(self.calendars()))
        self.injected += 1
        self.clinic.servers[server].fail_next(op, _error(kind, retry_after))

    @rule()
    def expire_cursor(self) -> None:
        self.clinic.servers["source"].expire_cursors()

    # ---- settle and check ------------------------------------------------------------------------
    async def _settle(self) -> None:
        for server in self.clinic.servers.values():
            server.failures.clear()
        await self.settle_rounds(4)

    async def _check(self) -> None:
        appts = await self.check_source()
        for name in self.calendars()[1:]:
            view = await self.view(name)
            if view.role == "mirror" and view.sync_enabled:  # a busy or paused calendar keeps what it had
                self.check_copies(name, self.clinic.servers[name].items.values(), appts.values(), view, self.policy)


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
