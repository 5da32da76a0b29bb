"""The conflict-notice loop stops between rounds: a delivery in progress is not cut off in its transaction."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sync.notify import conflict_notices
from sync.notify.conflict_notices import ConflictNoticeWorker
from sync.runtime.core import Core
from sync.runtime.notifier import Notifier, RecordingNotifier


@pytest.fixture
def held_round(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event, list[str]]:
    """A delivery round that waits for the test to release it: (started, release, what happened)."""
    started, release, outcome = asyncio.Event(), asyncio.Event(), []

    async def deliver_due(core: Core, notifier: Notifier) -> int:
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("delivered")
        return 0

    async def next_due(core: Core) -> None:
        return None

    monkeypatch.setattr(conflict_notices, "deliver_due", deliver_due)
    monkeypatch.setattr(conflict_notices, "next_due", next_due)
    return started, release, outcome


async def test_stop_lets_a_round_in_progress_finish(
    core: Core, held_round: tuple[asyncio.Event, asyncio.Event, list[str]]
) -> None:
    started, release, outcome = held_round
    worker = ConflictNoticeWorker(core, RecordingNotifier)
    await worker.start()
    await asyncio.wait_for(started.wait(), 10)
    stopping = asyncio.create_task(worker.stop())
    done, _ = await asyncio.wait({stopping}, timeout=0.3)
    assert not done, "stop() returned while a round was still delivering"
    release.set()
    await stopping
    assert outcome == ["delivered"]


async def test_stop_cancels_a_round_past_the_grace_period(
    core: Core, held_round: tuple[asyncio.Event, asyncio.Event, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    started, _, outcome = held_round
    worker = ConflictNoticeWorker(core, RecordingNotifier, stop_grace=0.05)
    await worker.start()
    await asyncio.wait_for(started.wait(), 10)
    await worker.stop()  # never released
    assert outcome == ["cancelled"]
    assert any("grace period" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
