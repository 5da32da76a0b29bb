"""Work done after the acknowledgement: a bounded queue and a few worker tasks per front end.

Chat platforms want an answer within seconds (Slack: 3 s), so front ends acknowledge first and put
the real work here. The queue is bounded, in jobs (`limit`) and, with `max_wait`, in time: when a
job queued now would wait longer than `max_wait` seconds before it starts, `submit` says no and the
front end answers "busy, try again" at once. An answer 25 s late is worse for a front desk than a
quick "busy" (bench.chat_mix at 64 connections: with only the job limit, 2,000 jobs queued and
answers arrived 25 s after the request). The wait is estimated as the largest of the oldest
queued job's age, the queue's length times the recent mean time between two jobs taken from a
backed-up queue (its measured drain rate), and the queue's length times the recent mean run time
of a job per worker, so a burst is refused before the first job of it has waited long. `submit(force=True)`
takes a job past `max_wait` (not past `limit`): for work already started, whose person was told
to wait for it. A job that fails is logged (without patient data) and never takes a worker down.

Acknowledgements come first: while `busy()` says requests are in flight, a worker lets the event
loop turn `yield_turns` times before it starts its next job, so requests whose bytes have already
arrived are parsed and acknowledged before it. It does not wait beyond that: holding every job back
for a fixed time (it once polled for up to 250 ms) caps the answers at workers / that time under
steady traffic (16 a second with 4 workers), and answers then fell seconds behind (bench.chat_mix).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["Background", "Job"]

log = logging.getLogger("clinicbot.background")

Job = Callable[[], Awaitable[None]]
#: The weight of the latest job in `mean_run` (about the last 20 jobs count).
_WEIGHT = 0.05


class Background:
    """`submit(job)` from a request handler; `start()`/`stop()` from the server's lifecycle."""

    def __init__(
        self,
        name: str,
        workers: int = 8,
        limit: int = 2000,
        busy: Callable[[], bool] | None = None,
        yield_turns: int = 3,
        max_wait: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.workers = workers
        self.busy = busy
        self.yield_turns = yield_turns
        self.max_wait = max_wait
        self.clock = clock
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=limit)
        self._queued_at: deque[float] = deque()  # when each queued job came, oldest first (FIFO as the queue)
        self._tasks: list[asyncio.Task[None]] = []
        #: Recent mean seconds a job takes from its start to its end (exponentially weighted).
        self.mean_run = 0.0
        #: Recent mean seconds between two jobs taken while others were waiting (the drain rate).
        self.mean_gap = 0.0
        self._taken_at: float | None = None  # when the last job was taken, if others were waiting then
        self.done = 0
        self.failed = 0
        self.rejected = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def expected_wait(self) -> float:
        """Seconds a job queued now would likely wait before a worker starts it (0 with none queued)."""
        if not self._queued_at:
            return 0.0
        oldest = self.clock() - self._queued_at[0]
        queued = len(self._queued_at)
        return max(oldest, queued * self.mean_gap, queued * self.mean_run / self.workers)

    def admits(self) -> bool:
        """Whether `submit` would take a job now."""
        if self._queue.full():
            return False
        return self.max_wait is None or self.expected_wait() <= self.max_wait

    def submit(self, job: Job, *, force: bool = False) -> bool:
        """Queue a job; False (and nothing queued) when the queue is full, or (unless `force`) when
        the job would wait longer than `max_wait` before it starts."""
        if not force and self.max_wait is not None and self.expected_wait() > self.max_wait:
            self.rejected += 1
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.rejected += 1
            return False
        self._queued_at.append(self.clock())
        return True

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._work(), name=f"{self.name}-worker-{i}") for i in range(self.workers)
            ]

    async def drain(self) -> None:
        """Wait until every queued job has finished (tests and graceful shutdown)."""
        await self._queue.join()

    async def stop(self, grace: float = 5.0) -> None:
        """Finish what is queued (up to `grace` seconds), then stop the workers."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            self._queued_at.popleft()
            now = self.clock()
            if self._taken_at is not None:  # the queue was backed up since the last take: a drain step
                self.mean_gap += (now - self._taken_at - self.mean_gap) * _WEIGHT
            self._taken_at = now if self._queued_at else None
            if self.busy is not None and self.busy():
                for _ in range(self.yield_turns):  # a few turns of the loop, not a wait
                    await asyncio.sleep(0)
            started = self.clock()
            try:
                await job()
                self.done += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed += 1
                log.warning(
                    "background job failed",
                    extra={"queue": self.name, "error": type(exc).__name__},
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
            finally:
                self.mean_run += (self.clock() - started - self.mean_run) * _WEIGHT
                self._queue.task_done()
