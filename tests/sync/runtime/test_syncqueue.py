"""The sync queue lets acks go first: a sync starts when requests pause, or after at most `max_defer`,
and a connection syncs at most once per `min_gap` while requests keep coming. Time is stepped by the
test (the queue's clock and sleep are injected), so nothing races a real timer."""

from __future__ import annotations

import asyncio
import itertools

from sync.runtime.syncqueue import MAX_ITEMS, SyncQueue, requested_items


class SteppedTime:
    """A clock the test moves; sleepers wake when it passes their deadline."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.now + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for deadline, future in list(self.sleepers):
            if deadline <= self.now + 1e-9 and not future.done():
                self.sleepers.remove((deadline, future))
                future.set_result(None)
        for _ in range(5):  # let woken tasks run up to their next sleep
            await asyncio.sleep(0)


async def test_a_sync_waits_for_the_burst_to_pause() -> None:
    time = SteppedTime()
    runs: list[float] = []

    async def runner(connection_id: int) -> None:
        runs.append(time.now)

    queue = SyncQueue(runner, settle=0.25, max_defer=3.0, min_gap=1.0, clock=time.clock, sleep=time.sleep)
    queue.request(7)
    await time.advance(0.0)
    assert runs == []  # not inline, not yet
    for _ in range(4):  # a delivery every 0.1 s: still busy acknowledging
        await time.advance(0.1)
        queue.request(7)
    assert runs == []
    await time.advance(0.25)  # quiet for `settle`: one sync for the whole burst
    assert runs == [0.65]
    await queue.drain()
    assert queue.runs == 1


async def test_a_storm_is_synced_within_max_defer_then_once_per_gap() -> None:
    time = SteppedTime()
    runs: list[float] = []

    async def runner(connection_id: int) -> None:
        runs.append(round(time.now, 2))

    queue = SyncQueue(runner, settle=0.25, max_defer=3.0, min_gap=1.0, clock=time.clock, sleep=time.sleep)
    queue.request(7)
    for _ in range(60):  # never quiet for 0.25 s
        await time.advance(0.1)
        queue.request(7)
    # The first run at max_defer; each later one max_defer after it became due again (the storm
    # never pauses): never back to back, so acks keep the loop.
    assert 3.0 <= runs[0] <= 3.1, runs
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(runs))
    assert len(runs) <= 3, runs
    for _ in range(40):
        await time.advance(0.1)
    await queue.drain()
    assert runs[-1] > 6.0  # the requests after the last run were synced too


async def test_item_requests_gather_and_any_plain_request_makes_the_run_full() -> None:
    """The runner sees the ids asked for since the last run (`requested_items`); a request without ids
    (a poll, another platform's webhook) or too many ids turn the run into a full read, and a failed
    item run leaves a full read for the next."""
    time = SteppedTime()
    seen: list[frozenset[str] | None] = []
    fail = [False]

    async def runner(connection_id: int) -> None:
        seen.append(requested_items.get())
        if fail[0]:
            raise RuntimeError("provider down")

    queue = SyncQueue(runner, settle=0.25, max_defer=3.0, min_gap=1.0, clock=time.clock, sleep=time.sleep)
    queue.request(7, items=["101:aa"])
    queue.request(7, items=["102:bb", "101:aa"])
    await time.advance(0.25)
    assert seen == [frozenset({"101:aa", "102:bb"})]
    assert requested_items.get() is None  # only inside the run

    queue.request(7, items=["103"])
    queue.request(7, reason="poll")
    queue.request(7, items=["104"])  # a full read is pending: it covers this one too
    await time.advance(1.0)
    assert seen[-1] is None

    queue.request(7, items=[str(n) for n in range(MAX_ITEMS + 1)])
    await time.advance(1.0)
    assert seen[-1] is None

    fail[0] = True
    queue.request(7, items=["105"])
    await time.advance(1.0)
    assert seen[-1] == frozenset({"105"})
    fail[0] = False
    queue.request(7, items=["106"])  # after a failed item read: the window, not just 106
    await time.advance(1.0)
    assert seen[-1] is None
    await queue.drain()
    assert queue.runs == 5
