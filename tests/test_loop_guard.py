"""The loop guard (tests/loop_guard.py): what a closing test loop leaves behind fails the test."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.loop_guard import leftovers

pytest_plugins = ("pytester",)

ROOT = Path(__file__).resolve().parents[1]


async def _stubborn(release: asyncio.Event) -> None:
    """The bug the guard is for: a loop that swallows its cancellation."""
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


def test_a_task_that_ignores_its_cancellation_is_named() -> None:
    loop = asyncio.new_event_loop()
    try:
        release = asyncio.Event()
        stubborn = loop.create_task(_stubborn(release), name="stubborn-loop")
        plain = loop.create_task(asyncio.sleep(3600), name="plain-sleeper")  # ends when cancelled: fine
        loop.run_until_complete(asyncio.sleep(0))  # both started
        [problem] = leftovers(loop, timeout=0.1)
        assert "ignored its cancellation" in problem and "stubborn-loop" in problem
        assert plain.cancelled() and not stubborn.done()
        release.set()  # let it end, so this test leaves nothing behind itself
        loop.run_until_complete(asyncio.wait(asyncio.all_tasks(loop)))
    finally:
        loop.close()


def test_a_task_that_ends_when_cancelled_is_no_problem() -> None:
    loop = asyncio.new_event_loop()
    try:
        sleeper = loop.create_task(asyncio.sleep(3600))
        assert leftovers(loop, timeout=5) == []
        assert sleeper.cancelled() and not asyncio.all_tasks(loop)
    finally:
        loop.close()


def test_a_connection_still_open_when_the_loop_closes_is_named(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'leak.sqlite3'}")

    async def use() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))  # back to the pool, which keeps it open

    try:
        loop.run_until_complete(use())
        [problem] = leftovers(loop, timeout=5)
        assert "database connection" in problem and "still open" in problem
        assert "tests/test_loop_guard.py" in problem  # where it was opened
        loop.run_until_complete(engine.dispose())
        loop.run_until_complete(use())  # opened again, and this time disposed of
        loop.run_until_complete(engine.dispose())
        assert leftovers(loop, timeout=5) == []
    finally:
        loop.close()


def test_the_test_whose_loop_closes_with_a_stubborn_task_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wired into pytest: the test fails at teardown, naming the task (it used to pass with a warning)."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_stubborn='''
import asyncio

async def _stubborn():
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return await asyncio.sleep(3600)  # ignores it: what the guard is for

async def test_leaves_a_stubborn_task():
    asyncio.get_running_loop().create_task(_stubborn(), name="stubborn-loop")

async def test_leaves_nothing():
    await asyncio.sleep(0)
'''
    )
    monkeypatch.setenv("CLINICBOT_TEST_LEFTOVER_SECONDS", "0.2")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = pytester.runpytest_subprocess("-p", "tests.loop_guard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaves_a_stubborn_task*",
                                 "*ignored its cancellation*stubborn-loop*"])
