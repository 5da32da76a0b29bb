"""The scheduler: APScheduler 3.11 `AsyncIOScheduler` with its jobs in memory.

Design. Reminders are NOT one APScheduler job each: the ReminderLedger is the schedule (see
sync.notify.reminders.planner), and APScheduler runs a handful of persistent jobs:
- `clinicbot.reminders.dispatch`: a date job re-armed after every run for the earliest due row;
- `clinicbot.reminders.poll`: every few seconds, re-arms the dispatcher when another process
  planned an earlier row;
- `clinicbot.reminders.plan`: every minute, plans agendas and appointments that lack rows;
- `clinicbot.periodic.<name>`: jobs other parts register with `add_periodic` (polling sync,
  webhook renewal, retention).
Job functions are module-level and carry only a runtime key (stable per database and schema)
that finds this process's `ClinicScheduler`.

Why in memory. Nothing here needs APScheduler to remember a job: the ledger is the schedule, and
every job is added again (replacing any kept one, next run time included) whenever a process
becomes the leader. APScheduler 3's persistent store is synchronous, and AsyncIOScheduler calls it
on the event loop: at start, for every add, and after every run (the poll job runs every two
seconds). Each call waited on the database with the whole bot stopped, acks included; a commit
slowed by a loaded disk, or a lock, stalled every chat answer for seconds.

Leadership. On PostgreSQL one process holds the advisory lock (sync.runtime.leader) and runs the
scheduler; the others poll every `leader_poll` seconds and take over when it dies. On SQLite
the server is single-process: it runs the scheduler without a lock and says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.util import obj_to_ref, ref_to_obj
from sqlalchemy.engine import make_url

from sync.notify.reminders.dispatch import Dispatcher, DispatchReport
from sync.notify.reminders.planner import ReminderSubscriber, plan_upcoming
from sync.runtime.leader import LeaderLock

if TYPE_CHECKING:
    from sync.runtime.core import Core

__all__ = [
    "ClinicScheduler",
    "SchedulerUnavailable",
    "dispatch_job",
    "periodic_job",
    "plan_job",
    "poll_job",
]

log = logging.getLogger("clinicbot.scheduler")

DISPATCH_ID = "clinicbot.reminders.dispatch"
POLL_ID = "clinicbot.reminders.poll"
PLAN_ID = "clinicbot.reminders.plan"
PERIODIC_PREFIX = "clinicbot.periodic."
#: A dispatch run stays awake for a row due within this long, for at most STAY_AWAKE_MAX seconds.
STAY_AWAKE = timedelta(seconds=2)
STAY_AWAKE_MAX = 30.0
#: Seconds stopping waits for the jobs in progress to finish before it cancels them.
STOP_GRACE = 10.0
#: This process's schedulers by runtime key; the only way persisted jobs reach live objects.
_RUNTIMES: dict[str, ClinicScheduler] = {}

PeriodicFn = Callable[["Core"], Awaitable[None]]


class SchedulerUnavailable(Exception):
    """The scheduler cannot run in this process; the message says why and what to do."""


def runtime_key(url: str, schema: str) -> str:
    """Stable across restarts for one database and schema; never contains the password."""
    safe = make_url(url).render_as_string(hide_password=True)
    return hashlib.sha256(f"{safe}#{schema}".encode()).hexdigest()[:16]


def _runtime(key: str) -> ClinicScheduler | None:
    rt = _RUNTIMES.get(key)
    if rt is None or not rt.is_leader:
        log.warning("a scheduler job fired without a running scheduler", extra={"runtime": key})
        return None
    return rt


async def _run(key: str, work: Callable[[ClinicScheduler], Awaitable[None]]) -> None:
    """Run one job's work for the scheduler `key` names, known to it while it runs (see `_step_down`)."""
    rt = _runtime(key)
    if rt is None:
        return
    task = asyncio.current_task()
    assert task is not None
    rt._jobs.add(task)
    try:
        await work(rt)
    finally:
        rt._jobs.discard(task)


async def dispatch_job(key: str) -> None:
    """APScheduler entry: send what is due, then re-arm for the next due row."""
    await _run(key, lambda rt: rt.dispatch())


async def poll_job(key: str) -> None:
    """APScheduler entry: notice rows other processes planned earlier than the armed time."""
    await _run(key, lambda rt: rt.poll())


async def plan_job(key: str) -> None:
    """APScheduler entry: the periodic planning sweep."""
    await _run(key, lambda rt: rt.plan())


async def periodic_job(key: str, ref: str) -> None:
    """APScheduler entry for `add_periodic` jobs: resolve the function by reference, call it."""
    await _run(key, lambda rt: rt.run_periodic(ref))


class ClinicScheduler:
    """Runs the scheduler when this process is the leader; plans reminders in every process."""

    def __init__(
        self,
        core: Core,
        *,
        grace: timedelta = timedelta(minutes=15),
        leader_poll: float = 2.0,
        due_poll: float = 2.0,
        plan_every: float = 60.0,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        self.core = core
        self.stop_grace = stop_grace
        self.leader_poll = leader_poll
        self.due_poll = due_poll
        self.plan_every = plan_every
        self.key = runtime_key(core.store.url, core.store.schema)
        self.dispatcher = Dispatcher(core.store, lambda: core.services.notifier, core.clock, grace=grace)
        self.subscriber = ReminderSubscriber(core.clock, self.wake)
        self._periodic: dict[str, tuple[float, str]] = {}
        self._aps: AsyncIOScheduler | None = None
        self._retiring: AsyncIOScheduler | None = None  # stepping down: paused, not yet shut down
        self._lock: LeaderLock | None = None
        self._elector: asyncio.Task[None] | None = None
        self._armed_at: datetime | None = None
        self._dispatching = asyncio.Lock()
        #: The job runs in progress here (their APScheduler tasks): stopping waits for them.
        self._jobs: set[asyncio.Task[Any]] = set()
        self.is_leader = False
        self.leader_since: datetime | None = None

    # --- public API ---------------------------------------------------------------------------
    def add_periodic(self, name: str, seconds: float, fn: PeriodicFn) -> str:
        """Run `fn(core)` every `seconds` on the leader; `fn` must be a module-level coroutine function.

        The job id is `clinicbot.periodic.<name>`, stable across restarts; registering the same
        name again replaces it.
        """
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"{name}: a periodic job must be an async function")
        try:
            ref = obj_to_ref(fn)
            found = ref_to_obj(ref)
        except (ValueError, LookupError):
            found = None
        if found is not fn:
            raise TypeError(f"{name}: a periodic job must be a module-level function (APScheduler stores it by name)")
        if seconds < 1:
            raise ValueError(f"{name}: a periodic job runs at most once a second")
        self._periodic[name] = (seconds, ref)
        if self._aps is not None:
            self._add_periodic_job(name, seconds, ref)
        return PERIODIC_PREFIX + name

    def wake(self, at: datetime) -> None:
        """Make sure the dispatcher wakes by `at` (called after a commit that planned a row)."""
        if self._aps is None:
            return
        armed = self._armed_at
        # An armed time well in the past means that run was lost (e.g. skipped): arm again.
        lost = armed is not None and armed < datetime.now(UTC) - timedelta(seconds=5)
        if armed is None or at < armed or lost:
            self._arm(at)

    async def start(self) -> None:
        """Start: on SQLite lead at once; on PostgreSQL start competing for the leader lock."""
        if self.key in _RUNTIMES:
            raise SchedulerUnavailable("a scheduler for this database is already running in this process")
        _RUNTIMES[self.key] = self
        if self.core.store.is_sqlite:
            log.info(
                "SQLite: the scheduler runs in this process without a leader lock; run ONE server "
                "process (use PostgreSQL for several replicas)"
            )
            await self._become_leader()
            return
        self._lock = LeaderLock(self.core.store.url, self.core.store.schema)
        self._elector = asyncio.create_task(self._elect(), name="clinicbot-scheduler-election")

    async def stop(self) -> None:
        """Stop leading (or competing), release the lock, forget the runtime."""
        if self._elector is not None:
            self._elector.cancel()
            # wait, not `await` + `except CancelledError`: that would also swallow our own cancellation
            await asyncio.wait({self._elector})
            self._elector = None
        await self._step_down()
        if self._lock is not None:
            await self._lock.release()
        _RUNTIMES.pop(self.key, None)

    # --- leadership ---------------------------------------------------------------------------
    async def _elect(self) -> None:
        assert self._lock is not None
        while True:
            try:
                if not self.is_leader:
                    if await self._lock.try_acquire():
                        await self._become_leader()
                elif not await self._lock.healthy():
                    log.error("lost the scheduler leader lock; stopping the scheduler here")
                    await self._step_down()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler election step failed")
                await self._step_down()
                if self._lock is not None:
                    await self._lock.release()
            await asyncio.sleep(self.leader_poll)

    async def _become_leader(self) -> None:
        recovered = await self.dispatcher.recover_in_doubt()
        self._aps = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()},
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._aps.start()
        self.is_leader = True
        self.leader_since = datetime.now(UTC)
        aps = self._aps
        aps.add_job(poll_job, "interval", seconds=self.due_poll, args=[self.key], id=POLL_ID, replace_existing=True)
        aps.add_job(
            plan_job,
            "interval",
            seconds=self.plan_every,
            args=[self.key],
            id=PLAN_ID,
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
        for name, (seconds, ref) in self._periodic.items():
            self._add_periodic_job(name, seconds, ref)
        self._arm(datetime.now(UTC))
        log.info(
            "this process now runs the scheduler",
            extra={"recovered_in_doubt": recovered, "periodic_jobs": len(self._periodic)},
        )

    async def _step_down(self) -> None:
        """Stop running jobs here: start no new one, let those in progress finish (up to
        `stop_grace` seconds), cancel the rest and wait until they have ended.

        APScheduler's own shutdown only cancels the job tasks and leaves them running: a job cut
        off in a database call then went on closing its connection after the engine was
        disposed and the event loop closed (an aiosqlite connection's close never finished,
        and the loop's shutdown waited on it for ever).
        """
        if self._aps is not None:
            # kept until shut down: a step-down cut short (stop() cancelling the elector in the
            # middle of one) is finished by the next
            self._retiring, self._aps = self._aps, None
            self._armed_at = None
        aps = self._retiring
        if aps is not None:
            if aps.running:
                aps.pause()
                await asyncio.sleep(0)  # a job submitted just before the pause starts, and is counted
                if self._jobs:
                    _, late = await asyncio.wait(set(self._jobs), timeout=self.stop_grace)
                    if late:
                        log.warning("stopping the scheduler cancels jobs still running after the grace period",
                                    extra={"jobs": len(late), "grace_seconds": self.stop_grace})
                aps.shutdown(wait=False)  # cancels what is still running
            self._retiring = None
        if self._jobs:
            await asyncio.wait(set(self._jobs))
        await asyncio.sleep(0)  # AsyncIOScheduler shuts down on its next loop turn
        self.is_leader = False
        async with self._dispatching:  # let a dispatch in flight record its outcomes
            pass

    # --- jobs ---------------------------------------------------------------------------------
    def _arm(self, at: datetime) -> None:
        if self._aps is None:
            return
        self._aps.add_job(
            dispatch_job,
            "date",
            run_date=max(at, datetime.now(UTC)),
            args=[self.key],
            id=DISPATCH_ID,
            replace_existing=True,
            # Re-armed from inside a running dispatch: a second instance waits for `_dispatching`
            # instead of being skipped by max_instances (which would lose the date job).
            max_instances=3,
        )
        self._armed_at = at

    def _add_periodic_job(self, name: str, seconds: float, ref: str) -> None:
        assert self._aps is not None
        self._aps.add_job(
            periodic_job,
            "interval",
            seconds=seconds,
            args=[self.key, ref],
            id=PERIODIC_PREFIX + name,
            replace_existing=True,
            misfire_grace_time=int(seconds),
        )

    async def dispatch(self) -> None:
        """Send what is due and re-arm; one at a time.

        While the next row is due within `STAY_AWAKE`, keep going in this run instead of re-arming
        the date job for every reminder of a busy minute.
        """
        loop = asyncio.get_running_loop()
        async with self._dispatching:
            self._armed_at = None
            nxt: datetime | None = None
            until = loop.time() + STAY_AWAKE_MAX
            try:
                while self._aps is not None:
                    self._log(await self.dispatcher.run_due())
                    nxt = await self.dispatcher.next_due()
                    if nxt is None:
                        break
                    gap = (nxt - self.core.clock()).total_seconds()
                    if gap > STAY_AWAKE.total_seconds() or loop.time() + gap > until:
                        break
                    await asyncio.sleep(max(gap, 0.0))
            finally:
                if nxt is None:
                    nxt = await self.dispatcher.next_due()
                if nxt is not None and self._aps is not None:
                    self._arm(nxt)

    @staticmethod
    def _log(report: DispatchReport) -> None:
        if report.sent or report.failed or report.dropped:
            log.info(
                "reminders dispatched",
                extra={
                    "sent": report.sent,
                    "late": report.late,
                    "retry": report.retried,
                    "failed": report.failed,
                    "stale": report.stale,
                    "dropped": report.dropped,
                },
            )

    async def poll(self) -> None:
        """Re-arm if an earlier row appeared (planned by another process)."""
        if self._dispatching.locked():
            return
        nxt = await self.dispatcher.next_due()
        if nxt is not None:
            self.wake(nxt)

    async def plan(self) -> None:
        """Plan agendas and any appointment lacking rows; wake for the earliest."""
        async with self.core.store.session() as session:
            earliest = await plan_upcoming(session, self.core.clock())
        if earliest is not None:
            self.wake(earliest)

    async def run_periodic(self, ref: str) -> None:
        """Run one registered periodic function; remove a job nobody registers any more."""
        name = next((n for n, (_, r) in self._periodic.items() if r == ref), None)
        if name is None:
            log.warning("removing a periodic job nobody registered", extra={"ref": ref})
            for job in list(self._aps.get_jobs() if self._aps else []):
                if job.args[1:] == (ref,):
                    job.remove()
            return
        fn: Any = ref_to_obj(ref)
        try:
            await fn(self.core)
        except Exception:
            log.exception("periodic job failed", extra={"job": name})
