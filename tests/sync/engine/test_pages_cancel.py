"""The engine's page reader (`_pages`) stops its read-ahead task without hiding its caller's cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta

import pytest

from sync.contract import CalendarCapabilities
from sync.contract.items import ChangeSet, Window
from sync.engine.run import _pages

WINDOW = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=7))


class _SlowToStop:
    """A paged provider whose reader needs a while to let go of its connection once cancelled."""

    def __init__(self) -> None:
        self.capabilities = CalendarCapabilities(paged=True)
        self.stopping = asyncio.Event()
        self.release = asyncio.Event()

    async def change_pages(self, cursor: str | None, window: Window) -> AsyncGenerator[ChangeSet, None]:
        yield ChangeSet(cursor=None)
        try:
            await asyncio.Event().wait()  # the next page never comes
        except asyncio.CancelledError:
            self.stopping.set()
            await self.release.wait()  # e.g. closing the HTTP response
            raise
        yield ChangeSet(cursor="never")  # pragma: no cover


async def test_a_caller_cancelled_while_the_read_ahead_stops_stays_cancelled() -> None:
    provider = _SlowToStop()
    after_close: list[str] = []

    async def caller() -> None:
        pages = _pages(provider, None, WINDOW)  # type: ignore[arg-type]
        async for _page in pages:
            break
        await pages.aclose()  # waits for the read-ahead task, which is slow to stop
        after_close.append("went on as if not cancelled")

    task = asyncio.create_task(caller())
    await provider.stopping.wait()
    task.cancel()  # the caller is cancelled while it waits for the read-ahead to stop
    provider.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert after_close == []


async def test_the_read_ahead_is_stopped_and_awaited_when_the_reader_ends_early() -> None:
    provider = _SlowToStop()

    async def caller() -> None:
        pages = _pages(provider, None, WINDOW)  # type: ignore[arg-type]
        async for _page in pages:
            break
        await pages.aclose()

    task = asyncio.create_task(caller())
    await provider.stopping.wait()
    provider.release.set()
    await task
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
