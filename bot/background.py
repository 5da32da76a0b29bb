"""Work done after the acknowledgement: a bounded queue and a few worker tasks per front end.

Chat platforms want an answer within seconds (Slack: 3 s), so front ends acknowledge first and put
the real work here. The queue is bounded: when it is full, `submit` says no and the front end
answers "busy, try again" at once instead of letting memory and latency grow without limit.
A job that fails is logged (without patient data) and never takes a worker down.

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
from collections.abc import Awaitable, Callable

__all__ = ["Background", "Job"]

log = logging.getLogger("clinicbot.background")

Job = Callable[[], Awaitable[None]]


class Background:
    """`submit(job)` from a request handler; `start()`/`stop()` from the server's lifecycle."""

    def __init__(
        self,
        name: str,
        workers: int = 8,
        limit: int = 2000,
        busy: Callable[[], bool] | None = None,
        yield_turns: int = 3,
    ) -> None:
        self.name = name
        self.workers = workers
        self.busy = busy
        self.yield_turns = yield_turns
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=limit)
        self._tasks: list[asyncio.Task[None]] = []
        self.done = 0
        self.failed = 0
        self.rejected = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def submit(self, job: Job) -> bool:
        """Queue a job; False (and nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.rejected += 1
            return False
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
            if self.busy is not None and self.busy():
                for _ in range(self.yield_turns):  # a few turns of the loop, not a wait
                    await asyncio.sleep(0)
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
                self._queue.task_done()
