"""The queue of work after the acks is bounded in time as well as in jobs: a job that would wait
longer than `max_wait` before it starts is refused at once (the front end says "busy, try again"),
instead of being answered seconds late; work already started is still taken (`force`)."""

from __future__ import annotations

import asyncio

from bot.background import Background


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _blocked(queue: Background, gate: asyncio.Event, n: int) -> int:
    async def job() -> None:
        await gate.wait()

    return sum(queue.submit(job) for _ in range(n))


async def test_a_job_that_would_wait_too_long_is_refused_until_the_queue_moves() -> None:
    clock = Clock()
    queue = Background("t", workers=1, limit=100, max_wait=0.5, clock=clock)
    gate = asyncio.Event()
    await queue.start()
    try:
        assert await _blocked(queue, gate, 3) == 3  # one runs, two wait: nothing has waited yet
        await asyncio.sleep(0)
        assert queue.pending == 2 and queue.admits()
        clock.now += 0.6  # the oldest queued job has waited longer than max_wait
        assert queue.expected_wait() > 0.5 and not queue.admits()
        assert await _blocked(queue, gate, 1) == 0 and queue.rejected == 1
        assert await _blocked(queue, gate, 0) == 0
        forced = queue.submit(gate.wait, force=True)  # work already started is still taken
        assert forced and queue.pending == 3
        gate.set()
        await queue.drain()
        assert queue.pending == 0 and queue.expected_wait() == 0.0 and queue.admits()
        assert await _blocked(queue, gate, 1) == 1
        await queue.drain()
    finally:
        await queue.stop()


async def test_a_burst_is_refused_before_its_first_job_has_waited_long() -> None:
    """Queue length x the recent time a job takes per worker: 40 jobs of 0.1 s on 4 workers is 1 s."""
    clock = Clock()
    queue = Background("t", workers=4, limit=100, max_wait=0.5, clock=clock)
    queue.mean_run = 0.1
    gate = asyncio.Event()
    taken = await _blocked(queue, gate, 40)  # not started: nothing runs them yet
    assert taken == 21  # 20 queued x 0.1 s / 4 workers = 0.5 s: the 21st would wait longer
    assert queue.rejected == 19 and queue.expected_wait() > 0.5


async def test_mean_run_follows_the_jobs() -> None:
    clock = Clock()
    queue = Background("t", workers=1, limit=10, clock=clock)

    async def slow() -> None:
        clock.now += 1.0

    await queue.start()
    try:
        for _ in range(5):
            queue.submit(slow)
        await queue.drain()
        assert 0.2 < queue.mean_run < 1.0
    finally:
        await queue.stop()


async def test_without_max_wait_only_the_job_limit_refuses() -> None:
    clock = Clock()
    queue = Background("t", workers=1, limit=3, clock=clock)
    gate = asyncio.Event()
    assert await _blocked(queue, gate, 5) == 3
    clock.now += 60
    assert not queue.admits()  # full
    assert queue.expected_wait() >= 60
    gate.set()


async def test_the_wait_follows_the_measured_drain_rate() -> None:
    """Jobs taken from a backed-up queue 0.2 s apart: 5 queued would wait about 1 s."""
    clock = Clock()
    queue = Background("t", workers=1, limit=100, max_wait=0.5, clock=clock)

    async def slow() -> None:
        clock.now += 0.2

    for _ in range(20):
        queue.submit(slow, force=True)
    await queue.start()
    try:
        await queue.drain()
        assert 0.05 < queue.mean_gap <= 0.2
        gate = asyncio.Event()
        queue.workers = 100  # per-worker run time says little; the drain rate still counts
        taken = await _blocked(queue, gate, 20)
        assert taken < 20 and queue.expected_wait() > 0.5 - queue.mean_gap
        gate.set()
    finally:
        await queue.stop()
